"""``fastbert`` command line. Each sub-command lives in its own module, imported only when it runs.

A module named here provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "bench": ("fastbert.bench", "compare fastbert with transformers: parity and speed, side by side"),
    "profile": ("fastbert.bench.profile", "per-kernel time, FLOPs, bytes and roofline share of a model step"),
    "doctor": ("fastbert.doctor", "this machine's CPU, the kernel builds, and which CPU path fastbert takes and why"),
    "kernels": ("fastbert.kernels.aot", "ahead-of-time compile report of the Triton kernels (no GPU needed)"),
    "encode": ("fastbert.encoder", "embed one text per line into .npy or .jsonl"),
    "pretrain": ("fastbert.train_cli", "MLM+NSP pretraining from text files"),
    "finetune": ("fastbert.train_cli", "sequence-classification fine-tuning from CSV/JSONL"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastbert", description="fastbert: a fast, drop-in BERT engine")
    from fastbert import __version__

    parser.add_argument("--version", action="version", version=f"fastbert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # a module that is not there (a component not built yet) still lists its command
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        adder = getattr(mod, f"add_{name}_arguments", None) or getattr(mod, "add_arguments", None)
        if adder is not None:
            adder(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        mod = importlib.import_module(args._module)
    except ImportError as e:
        hint = " (pip install 'fastbert[bench]')" if args._module.startswith("fastbert.bench") else ""
        print(f"fastbert {args.command}: not available ({e}){hint}", file=sys.stderr)
        return 2
    runner = getattr(mod, f"run_{args.command}", None) or mod.run
    return int(runner(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
