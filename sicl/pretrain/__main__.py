"""``python -m sicl.pretrain [CONFIG] [key=value ...]``: the same command as ``sicl pretrain``."""

import sys

from sicl.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main(["pretrain", *sys.argv[1:]]))
