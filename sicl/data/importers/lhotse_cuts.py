"""lhotse manifests -> asr rows: a CutSet (``cuts.jsonl.gz``), or a RecordingSet with ``--supervisions``
(or a folder holding one cuts file, or one recordings and one supervisions file). One row per supervision.

Read with lhotse itself (``pip install lhotse``). A supervision that spans its whole single-file mono recording
points at that file; any other (a segment of a longer recording, a channel of a multi-channel one, audio that is
not a plain file) is cut out once and written as FLAC under ``--audio-dir``, since a manifest row is one clip.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sicl.data.importers._common import Candidate, Scan, cleanup_on_error, field_text, not_text, text
from sicl.data.importers.mmsu import safe_filename
from sicl.data.manifest import Example
from sicl.errors import SiclError

HELP = "lhotse cuts (or recordings + --supervisions) -> asr, one row per supervision"
SPLIT_HELP = "a lhotse manifest holds one split: pass that split's manifest as SRC"
USES_SPLIT = False
#: lhotse language names seen in its recipes -> ISO codes (others: two/three-letter values are kept, else --lang)
LANGS = {"english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "chinese": "zh",
         "mandarin": "zh", "japanese": "ja", "russian": "ru", "portuguese": "pt", "dutch": "nl", "polish": "pl"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supervisions", type=Path, default=None, metavar="FILE",
                        help="supervisions manifest, when SRC is a recordings manifest")
    parser.add_argument("--lang", default="en", help="language when a supervision has none (default: en)")
    parser.add_argument("--audio-dir", type=Path, default=None, metavar="DIR",
                        help="where cut-out segments are written (default: audio/ beside OUT)")


def _load(path: Path) -> Any:
    try:
        from lhotse import load_manifest
    except ImportError:
        raise SiclError("reading lhotse manifests needs lhotse: pip install lhotse") from None
    try:
        return load_manifest(path)
    except Exception as e:  # lhotse raises ValueError/KeyError/JSON errors for foreign or damaged files
        raise SiclError(f"{path}: not a lhotse manifest ({str(e).splitlines()[0][:200]})") from None


def _cuts(src: Path, supervisions: Path | None, inputs: list[Path]) -> Any:
    from lhotse import CutSet, RecordingSet, SupervisionSet

    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.name.endswith((".jsonl.gz", ".jsonl", ".json")))
        cuts = [p for p in files if "cuts" in p.name]
        recs = [p for p in files if "recordings" in p.name]
        sups = [p for p in files if "supervisions" in p.name]
        if len(cuts) == 1:
            src = cuts[0]
        elif len(recs) == 1 and len(sups) == 1 and supervisions is None:
            src, supervisions = recs[0], sups[0]
        else:
            raise SiclError(f"{src}: expected one *cuts* file, or one *recordings* and one *supervisions* file "
                            f"(found {', '.join(p.name for p in files) or 'none'}); pass the manifest as SRC")
    inputs.append(src)
    manifest = _load(src)
    if isinstance(manifest, CutSet):
        return manifest
    if isinstance(manifest, RecordingSet):
        if supervisions is None:
            raise SiclError(f"{src}: a recordings manifest needs --supervisions FILE")
        inputs.append(supervisions)
        sups = _load(supervisions)
        if not isinstance(sups, SupervisionSet):
            raise SiclError(f"{supervisions}: not a supervisions manifest")
        return CutSet.from_manifests(recordings=manifest, supervisions=sups)
    raise SiclError(f"{src}: a {type(manifest).__name__}; expected cuts or recordings")


def _lang(value: Any, default: str) -> str:
    v = text(value)
    if not v:
        return default
    return LANGS.get(v.lower(), v.lower() if len(v) <= 3 else default)


def _load_problem(e: Exception, sources: list[Any]) -> tuple[str, str]:
    """(file, problem) for audio lhotse could not load: a missing source file by name, else lhotse's message
    (with its cause) on one line."""
    files = [text(s.source) for s in sources if getattr(s, "type", None) == "file"]
    for f in files:
        if not Path(f).exists():
            return f, "no such file"
    msg = " ".join(str(e).split())
    if msg.endswith("Details:") and e.__cause__ is not None:
        msg += " " + " ".join(str(e.__cause__).split())
    msg = msg.removesuffix(" Details:").removesuffix("Details:").strip() or type(e).__name__
    return (files[0] if files else "audio"), f"cannot load ({msg[:200]})"


def scan(src: Path, args: argparse.Namespace) -> Scan:
    out = Scan()
    audio_dir = (args.audio_dir or Path(args.out).parent / "audio").resolve()
    cuts = _cuts(src, args.supervisions, out.inputs)
    with cleanup_on_error(out):  # a failure after some segments were staged leaves nothing behind
        _scan_cuts(src, cuts, audio_dir, args, out)
    return out


def _scan_cuts(src: Path, cuts: Any, audio_dir: Path, args: argparse.Namespace, out: Scan) -> None:
    """Queue one row per supervision; cut out and stage the segments that are not whole files."""
    from sicl.data.audio import write_audio

    for n, cut in enumerate(cuts.trim_to_supervisions(keep_overlapping=False)):
        where = f"{src} cut {n}"
        if not cut.supervisions:
            out.drop("cut without supervision")
            continue
        sup = cut.supervisions[0]
        fields = {"id": field_text(sup.id), "text": field_text(sup.text), "speaker": field_text(sup.speaker)}
        wrong = next((k for k, v in fields.items() if v is None), None)
        if wrong is not None:  # a list or object: its Python repr must not reach the manifest
            out.bad_rows.append((where, not_text(wrong, getattr(sup, wrong))))
            continue
        rid = fields["id"] or text(cut.id)
        transcript = fields["text"] or ""
        if not transcript:
            out.drop("empty transcript")
            continue
        rec = getattr(cut, "recording", None)
        sources = getattr(rec, "sources", []) if rec is not None else []
        whole = (rec is not None and len(sources) == 1 and sources[0].type == "file" and rec.num_channels == 1
                 and abs(cut.start) < 1e-3 and abs(cut.duration - rec.duration) < 1e-3)
        if whole:
            audio = Path(sources[0].source).resolve()
        else:
            try:
                wav = cut.load_audio()
            except Exception as e:  # missing file, unreadable format: bad audio, like any other
                file, problem = _load_problem(e, sources)
                ex = Example(id=rid, audio=file, task="asr", target=transcript, lang=_lang(sup.language, args.lang))
                out.bad_audio.append((Candidate(ex, where), f"{file}: {problem}"))
                continue
            target = audio_dir / f"{safe_filename(rid)}.flac"
            n = 1
            while target in out.created:  # two supervisions with one id: do not overwrite the first clip
                n += 1
                target = audio_dir / f"{safe_filename(rid)}_{n}.flac"
            write_audio(out.stage(target), wav[0], int(cut.sampling_rate))  # moved into place on success
            audio = target
        out.add(Example(id=rid, audio=str(audio), task="asr", target=transcript,
                        lang=_lang(sup.language, args.lang), speaker=fields["speaker"] or None), where)
