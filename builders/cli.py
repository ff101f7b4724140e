"""`hangar build <target>` (also `python -m server build`): registered on the `hangar.commands`
entry-point group; each target ends in the same atomic version drop (builders/pipeline.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from builders.engine_limits import ENGINE_DTYPES, EngineLimits
from builders.errors import BuildError
from builders.reporter import ProgressMode, Reporter
from builders.target import DropOptions, Target

DEFAULT_REPOSITORY = Path("model_repo")
DEMO_MODEL = "demo_llm"
TargetFactory = Callable[[argparse.Namespace], Target]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `build` and its targets to `hangar`; each target's `func(ns)` returns the exit status."""
    build = subparsers.add_parser(
        "build",
        help="build a model version and drop it into a model repository atomically",
        description="Build a model version in a hidden staging directory, validate it, then rename it to "
        "the next version number (or --version N) of <repository>/<model>.",
    )
    build.set_defaults(func=lambda ns: _usage(build))
    targets = build.add_subparsers(title="targets", metavar="TARGET")
    _demo(targets)
    _pytorch(targets)
    _tensorrtllm(targets)
    _onnx_example(targets)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _bool(text: str) -> bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _drop_args(
    p: argparse.ArgumentParser, *, required: bool, model: str | None, fixed_model: bool = False
) -> None:
    g = p.add_argument_group("where the version goes")
    if required:
        g.add_argument("--repository", type=Path, required=True, help="model repository directory")
    else:
        g.add_argument(
            "--repository",
            type=Path,
            default=DEFAULT_REPOSITORY,
            help="model repository (default: %(default)s)",
        )
    if fixed_model:
        p.set_defaults(model=model)
    elif model is None:
        g.add_argument("--model", required=True, help="model name (its directory in the repository)")
    else:
        g.add_argument("--model", default=model, help="model name (default: %(default)s)")
    g.add_argument("--version", type=int, help="version number (default: one above the highest existing one)")
    g.add_argument(
        "--force", action="store_true", help="replace --version if it exists (swapped in atomically)"
    )
    g.add_argument("--dry-run", action="store_true", help="print what would be done; write nothing")
    g.add_argument("--progress", choices=[m.value for m in ProgressMode], default="auto",
                   help="progress bars: auto = only on a terminal (default), on, off")  # fmt: skip


def _add(
    targets: argparse._SubParsersAction, name: str, help_text: str, factory: TargetFactory
) -> argparse.ArgumentParser:
    p = targets.add_parser(name, help=help_text, description=help_text)
    p.set_defaults(func=lambda ns: run_target(ns, factory), build_target=name)
    return p


def _demo(targets: argparse._SubParsersAction) -> None:
    def factory(ns: argparse.Namespace) -> Target:
        from builders.demo_target import DemoTarget

        return DemoTarget(ns.model, ns.seed)

    p = _add(
        targets,
        "demo",
        "the small demo LLM (tiny seeded Llama + byte-level BPE tokenizer) for `make serve`",
        factory,
    )
    p.add_argument(
        "--seed", type=int, default=0, help="weight seed; another seed gives other greedy output (default 0)"
    )
    _drop_args(p, required=False, model=DEMO_MODEL)


def _pytorch(targets: argparse._SubParsersAction) -> None:
    def factory(ns: argparse.Namespace) -> Target:
        from builders.pytorch_target import PyTorchTarget

        return PyTorchTarget(ns.checkpoint, ns.dtype)

    p = _add(
        targets,
        "pytorch",
        "a Hugging Face checkpoint dir as a version served by the pytorch backend",
        factory,
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="Hugging Face checkpoint directory")
    p.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"), help="convert the weights (default: as stored)"
    )
    _drop_args(p, required=True, model=None)


def _tensorrtllm(targets: argparse._SubParsersAction) -> None:
    def factory(ns: argparse.Namespace) -> Target:
        from builders.tensorrtllm_target import RuntimeSettings, TensorRTLLMTarget

        limits = EngineLimits(
            max_batch_size=ns.max_batch_size, max_input_len=ns.max_input_len, max_seq_len=ns.max_seq_len,
            max_num_tokens=ns.max_num_tokens, tokens_per_block=ns.tokens_per_block,
            max_beam_width=ns.max_beam_width, tp_size=ns.tp_size, pp_size=ns.pp_size, dtype=ns.dtype,
            enable_chunked_context=ns.enable_chunked_context,
        )  # fmt: skip
        runtime = RuntimeSettings(
            ns.kv_cache_free_gpu_mem_fraction, ns.enable_kv_cache_reuse, ns.batch_scheduler_policy
        )
        return TensorRTLLMTarget(ns.checkpoint, limits, runtime, ns.convert_script, ns.trtllm_examples)

    d = EngineLimits()
    p = _add(
        targets, "tensorrtllm", "a TensorRT-LLM 1.2 engine (paged KV cache, in-flight batching)", factory
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="Hugging Face checkpoint directory")
    e = p.add_argument_group("engine limits (fixed at build time)")
    for flag, default, text in (
        ("--max-batch-size", d.max_batch_size, "requests the engine schedules at once"),
        ("--max-input-len", d.max_input_len, "longest prompt"),
        ("--max-seq-len", d.max_seq_len, "longest prompt + output"),
        ("--max-num-tokens", d.max_num_tokens, "tokens per engine step"),
        ("--tokens-per-block", d.tokens_per_block, "paged KV cache block size"),
        ("--max-beam-width", d.max_beam_width, "beams per request"),
        ("--tp-size", d.tp_size, "tensor-parallel ranks"),
        ("--pp-size", d.pp_size, "pipeline-parallel ranks"),
    ):
        e.add_argument(flag, type=int, default=default, help=f"{text} (default {default})")
    e.add_argument(
        "--dtype", choices=ENGINE_DTYPES, default=d.dtype, help="engine dtype (default %(default)s)"
    )
    e.add_argument(
        "--enable-chunked-context", action="store_true", help="build for and enable chunked prefill"
    )
    r = p.add_argument_group("serving settings written to config.pbtxt (default: keep the file's)")
    r.add_argument(
        "--kv-cache-free-gpu-mem-fraction",
        type=float,
        help="share of free GPU memory for the KV cache (0.9 in a new file)",
    )
    r.add_argument("--enable-kv-cache-reuse", type=_bool, metavar="{true,false}",
                   help="prefix block reuse (true in a new file)")  # fmt: skip
    r.add_argument("--batch-scheduler-policy", choices=("guaranteed_no_evict", "max_utilization"),
                   help="guaranteed_no_evict in a new file")  # fmt: skip
    t = p.add_argument_group("TensorRT-LLM tools")
    t.add_argument("--convert-script", type=Path, help="the family's convert_checkpoint.py")
    t.add_argument(
        "--trtllm-examples", type=Path, help="a TensorRT-LLM v1.2 examples/ dir (or $TRTLLM_EXAMPLES_DIR)"
    )
    _drop_args(p, required=True, model=None)


def _onnx_example(targets: argparse._SubParsersAction) -> None:
    def factory(ns: argparse.Namespace) -> Target:
        from builders.onnx_target import OnnxExampleTarget

        return OnnxExampleTarget()

    p = _add(targets, "onnx-example", "the add_sub example as an ONNX model (add_sub_onnx)", factory)
    _drop_args(p, required=False, model="add_sub_onnx", fixed_model=True)


def run_target(ns: argparse.Namespace, factory: TargetFactory) -> int:
    """Build and drop; the exit status: 0, 1 (build failed), 2 (bad input / cannot run here), 128+signal."""
    from builders.pipeline import run_build

    reporter = Reporter(ProgressMode(ns.progress))
    try:
        target = factory(ns)
        options = DropOptions(ns.repository, ns.model, ns.version, ns.force, ns.dry_run)
        run_build(target, options, reporter)
    except BuildError as e:
        print(f"hangar build {ns.build_target}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"hangar build {ns.build_target}: interrupted; nothing was dropped", file=sys.stderr)
        return 130
    return 0
