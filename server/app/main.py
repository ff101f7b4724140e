"""The `hangar` command (also `python -m server`): `serve`, plus plug-in commands such as `build`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from server import config as server_config

COMMAND_GROUP = "hangar.commands"
"""Entry-point group of plug-in subcommands: `name = module:register`, `register(subparsers)`."""
_EXPECTED_PLUGINS = ("build",)
log = logging.getLogger("hangar")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # `serve` never loads plug-ins: a broken builders install must not stop the server from starting.
    parser = build_parser(load_plugins=not args or args[0] != "serve")
    ns = parser.parse_args(args)
    func: Callable[[argparse.Namespace], int] | None = getattr(ns, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return int(func(ns) or 0)


def build_parser(load_plugins: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hangar", description="Triton-compatible gRPC model server")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    serve = subparsers.add_parser("serve", help="serve a model repository over gRPC")
    server_config.add_arguments(serve, os.environ)
    serve.set_defaults(func=_serve, command_parser=serve)
    if load_plugins:
        _add_plugins(subparsers)
    return parser


def _add_plugins(subparsers: argparse._SubParsersAction) -> None:
    loaded: set[str] = set()
    failures: dict[str, str] = {}
    for ep in entry_points(group=COMMAND_GROUP):
        try:
            register = ep.load()
            register(subparsers)
            loaded.add(ep.name)
        except Exception as e:  # a broken plug-in must not break `hangar --help` or the other commands
            failures[ep.name] = f"{ep.value} failed to load: {type(e).__name__}: {e}"
    for name in _EXPECTED_PLUGINS:
        if name not in loaded:
            reason = failures.get(name, f"no '{name}' entry point in group '{COMMAND_GROUP}'")
            _add_unavailable(subparsers, name, reason)


def _add_unavailable(subparsers: argparse._SubParsersAction, name: str, reason: str) -> None:
    sub = subparsers.add_parser(name, help=f"(unavailable: {reason})", add_help=False)
    sub.add_argument("rest", nargs=argparse.REMAINDER)

    def refuse(_: argparse.Namespace) -> int:
        print(
            f"hangar {name}: this command is not available ({reason}). "
            f"Install Hangar with its builders (pip install -e .) so that the"
            f" '{COMMAND_GROUP}' entry point loads.",
            file=sys.stderr,
        )
        return 2

    sub.set_defaults(func=refuse)


def _serve(ns: argparse.Namespace) -> int:
    from server.app.lifecycle import serve

    config = server_config.from_namespace(ns.command_parser, ns)
    try:
        return serve(config)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are installed
        return 130
