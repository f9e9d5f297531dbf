"""FLEURS, as published (the ``google/fleurs`` dataset repository): one folder per language configuration,
``data/<config>/{train,dev,test}.tsv`` plus ``data/<config>/audio/<split>.tar.gz`` (or that archive extracted to
``audio/<split>/``).

The TSVs have no header; a line is ``id, file name, raw transcription, transcription, characters, samples,
gender``. ``id`` is the FLoRes sentence: several speakers read each sentence, so the manifest id is the file
name (one per recording) and the sentence id goes to ``meta.sentence_id``. There is no speaker id.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import tarfile
import zlib
from pathlib import Path

from sicl.data.importers._common import Scan, check_not_input, cleanup_on_error, text, utf8_lines
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "FLEURS language folder (<split>.tsv + audio/<split>.tar.gz or audio/<split>/) -> asr"
SPLIT_HELP = "train, dev (alias: validation) or test (default: every split present)"
SPLITS = ("train", "dev", "test")
SPLIT_ALIASES = {"validation": "dev", "development": "dev"}
FIELDS = ("id", "file name", "raw transcription", "transcription", "characters", "samples", "gender")
#: FLEURS configurations whose language part is not the ISO 639 code the scorers know (CER for zh/yue)
LANG_CODES = {"cmn": "zh"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", choices=("raw", "normalized"), default="raw",
                        help="raw: the cased, punctuated transcription (default; the scorer normalises); "
                             "normalized: FLEURS' lower-cased, punctuation-free one")
    parser.add_argument("--lang", default=None,
                        help="language code of the rows (default: from the folder name: en_us -> en, "
                             "cmn_hans_cn -> zh)")
    parser.add_argument("--audio-dir", type=Path, default=None, metavar="DIR",
                        help="where clips taken out of audio/<split>.tar.gz go (default: audio/ beside OUT); "
                             "an extracted audio/<split>/ folder is used where it is")


def fleurs_lang(config: str) -> str:
    """The ISO 639 code of a FLEURS configuration name: ``en_us`` -> ``en``, ``cmn_hans_cn`` -> ``zh``."""
    base = config.lower().split("_")[0]
    return LANG_CODES.get(base, base)


def _splits(src: Path, split: str | None) -> list[Path]:
    if split is None:
        found = [src / f"{s}.tsv" for s in SPLITS if (src / f"{s}.tsv").is_file()]
        if not found:
            langs = sorted(p.name for p in (src / "data").glob("*_*") if p.is_dir()) if (src / "data").is_dir() else []
            hint = (f"; give one language folder, e.g. {src / 'data' / langs[0]}" if langs else
                    " (expected a FLEURS language folder such as data/en_us)")
            raise SiclError(f"{src}: no {', '.join(s + '.tsv' for s in SPLITS)}{hint}")
        return found
    split = SPLIT_ALIASES.get(split, split)
    tsv = src / f"{split}.tsv"
    if not tsv.is_file():
        have = ", ".join(sorted(p.stem for p in src.glob("*.tsv"))) or "none"
        raise SiclError(f"{src}: no {tsv.name} (TSVs here: {have})")
    return [tsv]


def _read_index(tsv: Path) -> list[tuple[int, list[str]]]:
    """The lines of a FLEURS TSV as fields. Fewer than the four that name a clip and its transcriptions is a
    malformed index: an error naming the line, before any audio is read."""
    rows = []
    try:
        fh = open(tsv, "rb")
    except OSError as e:
        raise SiclError(f"{tsv}: cannot open ({e.strerror})") from None
    with fh:
        for line_no, line in utf8_lines(fh, tsv):
            line = line.removeprefix("\ufeff").rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 4:
                raise SiclError(f"{tsv}:{line_no}: {len(fields)} tab-separated field(s); a FLEURS line has "
                                f"{len(FIELDS)} ({', '.join(FIELDS)})")
            rows.append((line_no, fields))
    return rows


def _extract(archive: Path, wanted: dict[str, Path], out: Scan) -> None:
    """Copy the members of ``archive`` whose file name is in ``wanted`` to their staged targets. Only the base
    name of a member is used, so no member can write outside the target folder."""
    try:
        tar = tarfile.open(archive, "r:*")
    except tarfile.TarError:  # its message lists every compression tried, one per line
        raise SiclError(f"{archive}: {_not_tar_why(archive)}; download it again") from None
    except OSError as e:
        raise SiclError(f"{archive}: cannot read the archive ({e.strerror or e})") from None
    try:
        with tar:
            for member in tar:
                name = Path(member.name).name
                target = wanted.get(name)
                if target is None or not member.isfile() or target in out.created:
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, open(out.stage(target), "wb") as dst:
                    shutil.copyfileobj(src, dst)
            # Read to the end: damage can look like the end of the archive (a zeroed header), and gzip checks
            # its CRC only there, so a damaged archive must not pass as one that lacks some clips.
            while tar.fileobj is not None and tar.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise SiclError(f"{archive}: cannot read the archive (truncated or damaged: {why[:200]}); "
                        "download it again") from None


def _not_tar_why(archive: Path) -> str:
    """Why tarfile could not open ``archive``, in a few words (from its first bytes)."""
    try:
        with open(archive, "rb") as fh:
            head = fh.read(2)
    except OSError as e:
        return f"cannot read the archive ({e.strerror or e})"
    if not head:
        return "not a tar.gz archive (the file is empty)"
    if head != b"\x1f\x8b":
        return "not a tar.gz archive (no gzip or tar header)"
    try:
        with gzip.open(archive) as gz:
            gz.read(1 << 16)
    except (OSError, EOFError, zlib.error) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        return f"cannot read the archive (truncated or damaged: {why[:200]})"
    return "not a tar.gz archive (gzip data, but no tar archive inside)"


def scan(src: Path, args: argparse.Namespace) -> Scan:
    if src.is_file():
        tsvs, root = [src], src.parent
        if args.split:
            raise SiclError("--split chooses a TSV inside a language folder; SRC is already one TSV")
    else:
        tsvs, root = _splits(src, args.split), src
    lang = args.lang or fleurs_lang(root.name)
    audio_dir = (args.audio_dir or Path(args.out).parent / "audio").resolve()
    out = Scan(inputs=list(tsvs))
    with cleanup_on_error(out):  # a failed extraction leaves no staging folder behind
        for tsv in tsvs:
            _scan_split(tsv, root, lang, audio_dir, args, out)
    return out


def _scan_split(tsv: Path, root: Path, lang: str, audio_dir: Path, args: argparse.Namespace, out: Scan) -> None:
    """Queue the rows of one split's TSV; take their clips out of its archive unless extracted."""
    split = tsv.stem
    folder, archive = root / "audio" / split, root / "audio" / f"{split}.tar.gz"
    extract = not folder.is_dir()
    if extract and not archive.is_file():
        raise SiclError(f"{root}: no audio for {tsv.name} (expected {folder} or {archive})")
    wanted: dict[str, Path] = {}
    for line_no, fields in _read_index(tsv):
        where = f"{tsv}:{line_no}"
        name = Path(text(fields[1])).name
        transcript = text(fields[2] if args.text == "raw" else fields[3])
        if not name:
            out.bad_rows.append((where, "empty file name"))
            continue
        if not transcript:
            out.drop(f"with an empty {args.text} transcription")
            continue
        if extract:
            audio = wanted.setdefault(name, audio_dir / name)  # FLEURS file names are unique
        else:
            audio = (folder / name).resolve()
        meta = {"split": split, "sentence_id": text(fields[0]), "fleurs_config": root.name}
        if len(fields) >= 7 and text(fields[6]):
            meta["gender"] = text(fields[6]).lower()
        out.add(Example(id=Path(name).stem, audio=str(audio), task="asr", target=transcript, lang=lang,
                        meta=meta), where)
    if extract and wanted:
        out.inputs.append(archive)
        check_not_input(Path(args.out), out)  # before taking gigabytes out of the archive, not after
        _extract(archive, wanted, out)
