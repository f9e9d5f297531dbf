"""`sicl` command line: a thin shell that registers commands and turns user errors into one line.

Each command lives in its own module under ``sicl.cli`` with ``add_arguments(parser)`` and ``run(args)``.
Only the module of the command being run is imported, so ``sicl --help`` stays fast and one command's
heavy dependencies never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sicl import __version__
from sicl.errors import SiclError

#: name -> (module, one-line help). Order is the order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("sicl.cli.prepare", "import a corpus in its native layout into a sicl manifest"),
    "validate": ("sicl.cli.validate", "check every row and audio file of a manifest"),
    "synth": ("sicl.cli.synth", "build the embedded synthetic speech world"),
    "pretrain": ("sicl.cli.pretrain", "pretrain tiny-omni, the project's small model, on the synthetic world"),
    "models": ("sicl.cli.models", "list built-in models and their paths"),
    "codes": ("sicl.cli.codes", "fill MiMo-Audio's per-clip audio-code cache (import or tokenize)"),
    "retrieve": ("sicl.cli.retrieve", "retrieve in-context demonstrations for queries (TICL, TICL+, ...)"),
    "train": ("sicl.cli.train", "SICL-AT episodic training or direct fine-tuning (LoRA)"),
    "eval": ("sicl.cli.eval", "zero-shot / ICL / adapter evaluation with k-sweeps"),
    "export": ("sicl.cli.export", "share an adapter: PEFT folder + model card, or merged into the base model"),
    "score": ("sicl.cli.score", "score a predictions file (WER/CER, BLEU, accuracy)"),
    "report": ("sicl.cli.report", "tables and plots from evaluation runs"),
    "demo": ("sicl.cli.demo", "the whole study on the embedded world"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="sicl", description="Speech in-context learning for auditory LLMs (SICL-AT): import corpora, retrieve "
        "demonstrations, train, evaluate, report. No download needed: `sicl demo --out runs/demo` runs the whole "
        "study on the embedded world. `sicl COMMAND --help` for each command.")
    parser.add_argument("--version", action="version", version=f"sicl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == command:
            mod = importlib.import_module(module)
            mod.add_arguments(p)
            examples = getattr(mod, "EXAMPLES", ())
            if examples:
                p.formatter_class = argparse.RawDescriptionHelpFormatter
                p.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
            p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args, extras = parser.parse_known_args(argv)
    if extras and isinstance(getattr(args, "overrides", None), list) and not any(a.startswith("-") for a in extras):
        # `key=value` after an option (`sicl train C.yaml --resume max_steps=5`): argparse fills a `*` positional
        # only once, so later ones come back unparsed; they are overrides, in the order given
        args.overrides.extend(extras)
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not args.command:
        parser.print_help()
        return 2
    from sicl.guard import Interrupted, disk_error

    try:
        return int(args._module.run(args) or 0)
    except Interrupted as e:
        print(f"sicl {args.command}: stopped: {e}", file=sys.stderr)
        return e.exit_code
    except SiclError as e:
        print(f"sicl {args.command}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`sicl score ... | head`): no traceback; stdout is pointed at /dev/null so the
        # interpreter's final flush does not fail again (the recipe in Python's signal module docs)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe
    except OSError as e:
        err = disk_error(e)
        if err is None:
            raise
        print(f"sicl {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sicl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
