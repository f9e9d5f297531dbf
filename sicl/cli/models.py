"""`sicl models`: list built-in models (path, parameters, size, whether weights are present), or install
a trained model folder as a built-in."""

from __future__ import annotations

import argparse
from pathlib import Path

#: shown at the end of --help
EXAMPLES = [
    'sicl models',
    'sicl models --install runs/pretrain-tiny-omni/final',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--install", metavar="DIR", help="copy a trained model folder into the zoo as --name")
    parser.add_argument("--name", default="tiny-omni", help="built-in name for --install (default tiny-omni)")


def run(args: argparse.Namespace) -> int:
    from sicl.errors import SiclError
    from sicl.models import zoo

    if args.install:
        if args.name not in zoo.BUILTINS:
            raise SiclError(f"unknown built-in name {args.name!r} ({', '.join(zoo.BUILTINS)})")
        src = Path(args.install)
        if not (src / "config.json").is_file():
            raise SiclError(f"{src}: not a model folder (no config.json)")
        dest = zoo.install_model(src, zoo.builtin_path(args.name))
        print(f"installed {args.name} at {dest}")
        return 0
    print(f"{'name':<12} {'weights':<8} {'params':>9} {'size':>9}  path")
    for info in zoo.list_builtins():
        params = f"{info.parameters / 1e6:.2f}M" if info.parameters else "-"
        size = f"{info.bytes_on_disk / 1e6:.1f}MB" if info.bytes_on_disk else "-"
        print(f"{info.name:<12} {'yes' if info.has_weights else 'no':<8} {params:>9} {size:>9}  {info.path}")
        print(f"{'':<12} {info.description}")
    return 0
