"""Every build ends the same way: stage in a hidden dir, validate, record a manifest, update config.pbtxt,
then rename the staging dir to the version number. Nothing numbered ever appears half written."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from builders.config_file import ConfigPlan, plan_config, write_config
from builders.errors import BuildError, BuildFailed, BuildInputError, BuildUnavailable
from builders.interrupts import pause_for_tests, signals_ignored, signals_interrupt
from builders.manifest import hash_tree, write_manifest
from builders.model_lock import ModelLock
from builders.renames import fsync_dir, rename_new, swap_dirs
from builders.reporter import Reporter
from builders.staging import new_staging_name, remove_path, staging_dirs
from builders.target import BuildContext, DropOptions, Target
from server.repository.layout import parse_version_name

_MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class DropResult:
    model: str
    version: int
    path: Path
    config: ConfigPlan
    dry_run: bool


def existing_versions(model_dir: Path) -> dict[int, Path]:
    """Version dirs as the server's repository scanner sees them."""
    if not model_dir.is_dir():
        return {}
    return {v: p for p in model_dir.iterdir() if (v := parse_version_name(p.name)) is not None and p.is_dir()}


def run_build(target: Target, options: DropOptions, reporter: Reporter) -> DropResult:
    """Check everything, then (unless dry_run) build and drop the version.

    Raises:
        BuildInputError / BuildUnavailable: before any work, naming the bad value. BuildFailed: a step or
        the validation failed. BuildInterrupted / KeyboardInterrupt: a signal. In every failure the
        staging dir is removed (a SIGKILL leaves it to the next build of the model, which removes it).
    """
    model_dir = _check_options(options)
    target.check()
    version = _choose_version(model_dir, options)
    config = plan_config(model_dir, options.model, target.name, target.owned_config())
    staging = model_dir / new_staging_name()
    ctx = BuildContext(staging, staging.with_name(staging.name + "-scratch"), reporter)
    if not options.dry_run:
        target.check_runnable()
    _print_plan(target, options, version, config, ctx)
    if options.dry_run:
        _dry_run_notes(target, reporter)
        return DropResult(options.model, version, model_dir / str(version), config, dry_run=True)
    model_dir.mkdir(exist_ok=True)
    with ModelLock(model_dir):
        _remove_stale(model_dir, reporter)
        planned, version = version, _choose_version(model_dir, options)  # again, under the lock
        if version != planned:
            reporter.info(f"version {planned} appeared meanwhile: building version {version}")
        if not config.current():
            config = plan_config(model_dir, options.model, target.name, target.owned_config())
        with signals_interrupt():
            path = _build_and_drop(target, options, version, config, ctx)
    reporter.info(
        f"dropped model '{options.model}' version {version}: {path} (config.pbtxt: {config.action})"
    )
    return DropResult(options.model, version, path, config, dry_run=False)


def _check_options(options: DropOptions) -> Path:
    repo = options.repository
    if not repo.is_dir():
        raise BuildInputError(f"model repository {repo} does not exist (or is not a directory)")
    if not _MODEL_NAME.match(options.model):
        raise BuildInputError(
            f"invalid model name {options.model!r}: use letters, digits, '_', '-' and '.' "
            "(not starting with '.')"
        )
    if options.version is not None and options.version < 1:
        raise BuildInputError(f"--version must be a positive integer, got {options.version}")
    return repo / options.model


def _choose_version(model_dir: Path, options: DropOptions) -> int:
    versions = existing_versions(model_dir)
    if options.version is None:
        return max(versions, default=0) + 1
    if options.version in versions and not options.force:
        raise BuildInputError(
            f"version {options.version} of model '{options.model}' already exists "
            f"({versions[options.version]}); pass --force to replace it, or omit --version"
        )
    return options.version


def _print_plan(
    target: Target, options: DropOptions, version: int, config: ConfigPlan, ctx: BuildContext
) -> None:
    out = ctx.reporter.info
    model_dir = ctx.staging.parent
    replacing = version in existing_versions(model_dir)
    out(f"hangar build {target.name}: model '{options.model}' version {version} in {options.repository}")
    out(f"  version dir: {model_dir / str(version)} ({'replaces the existing one' if replacing else 'new'})")
    out(f"  staging dir: {ctx.staging} (renamed to {version} once complete and valid)")
    out("  steps:")
    for i, step in enumerate(target.steps(), 1):
        out(f"    {i}. {step.description}")
        for line in step.details(ctx):
            out(f"       {line}")
    out(f"  validate: {target.validation()}; write hangar-manifest.json (sha256 of every file)")
    out(f"  config.pbtxt: {config.action} ({config.path})")
    if options.dry_run:
        for line in config.diff():
            out(f"    {line}")
    for warning in config.warnings:
        ctx.reporter.warn(warning)
    stale = staging_dirs(model_dir)
    if stale:
        out(f"  remove stale staging dirs of killed builds: {', '.join(p.name for p in stale)}")


def _dry_run_notes(target: Target, reporter: Reporter) -> None:
    try:
        target.check_runnable()
    except BuildUnavailable as e:
        reporter.info(f"  note: this plan cannot run on this machine: {e}")
    reporter.info("dry run: nothing was written")


def _remove_stale(model_dir: Path, reporter: Reporter) -> None:
    """Holding the model lock, every staging entry belongs to a build that died (SIGKILL, power loss)."""
    for path in staging_dirs(model_dir):
        reporter.info(f"removing {path.name}, left by a build that did not finish")
        remove_path(path)


def _build_and_drop(
    target: Target, options: DropOptions, version: int, config: ConfigPlan, ctx: BuildContext
) -> Path:
    try:
        ctx.staging.mkdir()
        _run_steps(target, ctx)
        ctx.reporter.info(f"validating: {target.validation()}")
        target.validate(ctx)
        pause_for_tests(ctx.staging, "before-drop")
        files = hash_tree(ctx.staging, ctx.reporter)
        write_manifest(
            ctx.staging,
            target=target.name,
            model=options.model,
            version=version,
            source=target.source(),
            parameters=target.parameters(),
            files=files,
            config_sha256=_sha256_text(config.new),
        )
        write_config(config)
        return _drop(ctx.staging, version, options.force, ctx.reporter)
    except BaseException:
        with signals_ignored():
            remove_path(ctx.staging)
        raise
    finally:
        with signals_ignored():
            remove_path(ctx.scratch)


def _run_steps(target: Target, ctx: BuildContext) -> None:
    steps = target.steps()
    paused = False
    with ctx.reporter.bar(len(steps), "build") as bar:
        for i, step in enumerate(steps, 1):
            bar.set_description(step.description)
            ctx.reporter.info(f"[{i}/{len(steps)}] {step.description}")
            try:
                step.run(ctx)
            except BuildError:
                raise
            except Exception as e:
                raise BuildFailed(f"{step.description}: {type(e).__name__}: {e}") from e
            bar.update(1)
            if not paused and any(ctx.staging.iterdir()):
                paused = True
                pause_for_tests(ctx.staging, "first-write")


def _drop(staging: Path, version: int, force: bool, reporter: Reporter) -> Path:
    model_dir = staging.parent
    final = model_dir / str(version)
    if force and final.exists():
        old = swap_dirs(staging, final, aside=model_dir / new_staging_name("replaced"))
        fsync_dir(model_dir)
        reporter.info(f"replaced version {version}; removing the old files")
        with signals_ignored():
            remove_path(old)
        return final
    try:
        rename_new(staging, final)
    except FileExistsError:
        raise BuildFailed(
            f"{final} appeared while building (not written by hangar build); nothing dropped"
        ) from None
    fsync_dir(model_dir)
    return final


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
