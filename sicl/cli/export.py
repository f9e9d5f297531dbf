"""`sicl export --adapter A --out DIR [--merge]`: share a trained adapter (PEFT folder + model card), or a full
model with the adapter merged that plain transformers loads.

Example:
    sicl export --adapter runs/demo/models/sicl-at1 --out share/sicl-at1
    sicl export --adapter runs/demo/models/sicl-at1 --out share/sicl-at1-merged --merge
"""

from __future__ import annotations

import argparse
import sys

#: shown at the end of --help
EXAMPLES = [
    'sicl export --adapter runs/demo/models/sicl-at1 --out share/sicl-at1',
    'sicl export --adapter runs/demo/models/sicl-at1 --out share/sicl-at1-merged --merge',
]

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--adapter", required=True, metavar="DIR", help="adapter folder written by sicl train")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="new folder to write, or an existing empty one (which is kept and filled)")
    parser.add_argument("--merge", action="store_true", help="write the base model with the adapter merged in")
    parser.add_argument("--model", default=None, metavar="M",
                        help="base model (default: the one in the adapter's training config)")
    parser.add_argument("--allow-download", action="store_true",
                        help="allow a hub download of the base model (a hub id as --model or in the config)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="weights dtype of a merged model (default: %(default)s)")
    parser.add_argument("--push-to-hub", default=None, metavar="REPO",
                        help="also upload the folder to this hub repo (needs --allow-upload)")
    parser.add_argument("--allow-upload", action="store_true", help="permit --push-to-hub to upload")


def run(args: argparse.Namespace) -> int:
    from sicl.errors import SiclError
    from sicl.models.export import check_adapter, check_out, export_adapter

    if args.push_to_hub and not args.allow_upload:
        raise SiclError("--push-to-hub uploads to a public service: add --allow-upload to confirm")
    check_out(args.out, check_adapter(args.adapter))
    out = export_adapter(args.adapter, args.out, merge=args.merge, model=args.model, dtype=args.dtype,
                         allow_download=args.allow_download)
    print(f"sicl export: {'merged model' if args.merge else 'adapter'} and model card in {out}", file=sys.stderr)
    if args.push_to_hub:
        from huggingface_hub import HfApi

        HfApi().upload_folder(folder_path=str(out), repo_id=args.push_to_hub)
        print(f"sicl export: uploaded to {args.push_to_hub}", file=sys.stderr)
    return 0
