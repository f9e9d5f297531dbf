"""Shared machinery for corpus importers.

An importer only *reads the index* of a corpus (TSV, JSON, parquet, transcript files) and turns each row
into a :class:`Candidate`: a manifest :class:`~sicl.data.manifest.Example` whose ``audio`` is an absolute
path, plus where the row came from. Everything that is the same for every corpus lives here: checking the
row against the manifest contract, decoding each clip exactly once (which validates it and gives its
duration), skipping or failing on bad audio, making ids unique, and writing the manifest atomically.

Reading the whole index before decoding anything means a malformed index fails in seconds, not after an
hour of decoding.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sicl.data.audio import SAMPLE_RATE, load_audio
from sicl.data.manifest import Example, json_error, json_type_name, parse_row, write_manifest
from sicl.data.validate import check_max_seconds
from sicl.errors import AudioError, SiclError

PROG = "sicl prepare"
#: How many names a warning line lists before "...".
SHOW = 3
#: Suffix pattern for repeated ids: the second ``x`` becomes ``x~2``.
DUP_SEP = "~"


@dataclass
class Candidate:
    """One row of a corpus index, ready to become a manifest row once its audio checks out."""

    example: Example
    where: str  # "index.tsv:12" or "data.parquet row 7": names the source line in messages


@dataclass
class Scan:
    """What an importer found in the corpus index (before any audio is decoded)."""

    candidates: list[Candidate] = field(default_factory=list)
    #: reason -> count of rows left out on purpose (filters, empty transcripts); never an error.
    dropped: Counter[str] = field(default_factory=Counter)
    #: (where, problem) for rows that cannot become a valid manifest row; errors under --strict.
    bad_rows: list[tuple[str, str]] = field(default_factory=list)
    #: final path -> where the importer actually wrote it (see :meth:`stage`). Files are moved into place
    #: only when the import succeeds, so a failed run never deletes or overwrites an earlier run's audio.
    created: dict[Path, Path] = field(default_factory=dict)
    #: target folder -> its temporary staging folder and the folders this run created for it (deepest
    #: first: the target folder and any missing parents), removed again when they end up empty.
    staging: dict[Path, tuple[Path, list[Path]]] = field(default_factory=dict)
    #: the index files the importer read (TSV, JSON, parquet, transcripts, archives): ``--out`` may not be one.
    inputs: list[Path] = field(default_factory=list)
    #: (row, problem) for rows whose audio the importer already found unreadable (e.g. a missing file).
    bad_audio: list[tuple[Candidate, str]] = field(default_factory=list)
    #: rows whose decoded audio is shorter than this are dropped (MyST's --min-seconds).
    min_seconds: float = 0.0
    #: what -> count of rows kept after a harmless repair (e.g. a choice listed twice, kept once): one note line.
    notes: Counter[str] = field(default_factory=Counter)

    def add(self, example: Example, where: str) -> None:
        """Queue a row after checking it against the manifest contract (so the output always reads back)."""
        _, problems = parse_row(example.to_dict())
        if problems:
            self.bad_rows.append((where, f"id {example.id!r}: {problems[0]}"))
        else:
            self.candidates.append(Candidate(example, where))

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def stage(self, target: Path) -> Path:
        """Where to write extracted audio that should end up at ``target``: a file in a temporary folder
        beside it, moved to ``target`` by :func:`finish` only if the import succeeds (and only if a kept row
        uses it). Call once per target; ``target in scan.created`` tells whether a name is taken."""
        folder = target.parent
        if folder not in self.staging:
            made = list(itertools.takewhile(lambda p: not p.exists(), (folder, *folder.parents)))
            try:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=".sicl-staging-", dir=folder))
            except OSError as e:
                _remove_empty(made)
                raise SiclError(f"{folder}: cannot write extracted audio here ({e.strerror})") from None
            self.staging[folder] = (tmp, made)
        staged = self.staging[folder][0] / target.name
        self.created[target] = staged
        return staged

    def source(self, audio: str | Path) -> Path:
        """The file to read for a row's audio: the staged copy while the import runs."""
        return self.created.get(Path(audio), Path(audio))

    def commit(self, kept: Iterable[Example]) -> list[tuple[Path, Path | None]]:
        """Move the staged audio that ``kept`` rows use into place. Returns what :meth:`rollback_commit`
        needs to undo it: ``(target, backup of the file it replaced or None)``."""
        done: list[tuple[Path, Path | None]] = []
        try:
            for ex in kept:
                target = Path(ex.audio)
                staged = self.created.get(target)
                if staged is None or not staged.exists():
                    continue
                backup = None
                if target.exists():
                    backup = staged.with_name(staged.name + ".previous")
                    os.replace(target, backup)
                done.append((target, backup))
                os.replace(staged, target)
        except OSError as e:
            self.rollback_commit(done)
            raise SiclError(f"{e.filename}: cannot move extracted audio into place ({e.strerror})") from None
        return done

    def rollback_commit(self, done: list[tuple[Path, Path | None]]) -> None:
        """Undo :meth:`commit`: earlier files get their old content back, new ones are removed."""
        for target, backup in reversed(done):
            try:
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink(missing_ok=True)
            except OSError:
                pass

    def cleanup(self) -> None:
        """Remove the staging folders, and the folders this run created for them that ended up empty (a
        failed run leaves no trace; folders that existed before are never removed)."""
        for tmp, made in self.staging.values():
            shutil.rmtree(tmp, ignore_errors=True)
            _remove_empty(made)
        self.staging.clear()


def _remove_empty(folders: Iterable[Path]) -> None:
    """rmdir each folder (deepest first) while it is empty; stop at the first one that is not."""
    for folder in folders:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return


@contextlib.contextmanager
def cleanup_on_error(scan: Scan) -> Iterator[Scan]:
    """For importers that extract audio while scanning: if the scan fails, remove what it staged (the staging
    folders and the folders created for them) before the error goes on; on success :func:`finish` does it."""
    try:
        yield scan
    except BaseException:
        scan.cleanup()
        raise


# --------------------------------------------------------------------------------------------- options

def add_common_arguments(parser: argparse.ArgumentParser, split_help: str) -> None:
    """Options every importer takes (corpus-specific ones are added by the importer)."""
    parser.add_argument("src", metavar="SRC", type=Path, help="corpus folder or index file (see docs/importers.md)")
    parser.add_argument("--out", required=True, type=Path, metavar="OUT.jsonl", help="manifest to write")
    parser.add_argument("--split", default=None, help=split_help)
    parser.add_argument("--strict", action="store_true",
                        help="any bad row or bad audio file is an error and nothing is written")
    parser.add_argument("--max-seconds", type=float, default=30.0, metavar="S",
                        help="clips longer than this count as bad audio (default: 30, the model's window)")
    parser.add_argument("--id-prefix", default="", metavar="P",
                        help="prepend P to every id (e.g. 'cv-fr/') so manifests of several corpora can be merged")
    parser.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1), metavar="N",
                        help="decode N clips at a time (threads; default: up to 4)")


# ----------------------------------------------------------------------------------------- index files

def read_tsv(path: Path, required: Sequence[str], split: Callable[[str], list[str]] | None = None,
             join: Callable[[Iterator[tuple[int, str]]], Iterator[tuple[int, str]]] | None = None
             ) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """Read a tab-separated file with a header line, *without* quote handling.

    Common Voice / CoVoST sentences contain unbalanced ``"`` characters; the csv module would join lines
    or drop quotes, so each line is simply split on tabs. Returns ``(header, rows)`` where rows yields
    ``(line_number, {column: value})``. A missing required column, a row with more fields than the header,
    or one too short to reach every required column (a truncated line must not pass as a row with empty
    fields) is a :class:`SiclError` naming the file (and line); a row that lacks only optional trailing
    columns is padded with empty values (some tools strip trailing empty columns). ``split`` replaces the tab split of one record and ``join`` turns
    the file's ``(line_number, line)`` pairs into records (a record's number is its first line's), for
    formats with escaped tabs and line breaks (CoVoST 2's pandas-written splits).
    """
    split = split or (lambda line: line.split("\t"))
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise SiclError(f"{path}: cannot open ({e.strerror})") from None
    lines = utf8_lines(fh, path)
    if join is not None:
        lines = join(lines)
    try:
        first = next(lines, (1, ""))[1].removeprefix("\ufeff").rstrip("\r\n")
    except BaseException:
        fh.close()
        raise
    header = split(first)
    missing = [c for c in required if c not in header]
    if missing:
        fh.close()
        raise SiclError(f"{path}:1: missing required column(s) {', '.join(missing)} "
                        f"(header has: {', '.join(h for h in header if h) or 'nothing'})")

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        with fh:
            for line_no, line in lines:
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                values = split(line)
                missing = header[len(values):]
                if len(values) > len(header) or any(c in required for c in missing):
                    raise SiclError(f"{path}:{line_no}: {len(values)} tab-separated fields, "
                                    f"the header has {len(header)}")
                values += [""] * len(missing)  # only optional trailing columns: some tools strip empty ones
                yield line_no, dict(zip(header, values, strict=True))

    return header, rows()


def utf8_lines(fh: Any, path: Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` of a binary file read as UTF-8; a bad byte is a SiclError naming its line."""
    for line_no, raw in enumerate(fh, start=1):
        try:
            yield line_no, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SiclError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start + 1} of the line; "
                            "re-save the file as UTF-8)") from None


def read_json_records(path: Path) -> list[tuple[str, Any]]:
    """Records of a JSON file holding a list of objects, or of a JSON Lines file: ``[(where, obj)]``.

    Bad JSON is a :class:`SiclError` naming the file and line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise SiclError(f"{path}: cannot open ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise SiclError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SiclError(f"{path}:{e.lineno}: {json_error(e)}") from None
        return [(f"{path} item {i}", obj) for i, obj in enumerate(data)]
    if stripped.startswith("{") and path.suffix.lower() == ".json":
        # A single object may wrap the list (e.g. {"data": [...]}); accept the one list value it holds.
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # maybe JSON Lines saved as .json: fall through
        if isinstance(data, dict):
            lists = [v for v in data.values()
                     if isinstance(v, list) and v and all(isinstance(o, dict) for o in v)]
            if len(lists) == 1:
                return [(f"{path} item {i}", obj) for i, obj in enumerate(lists[0])]
            return [(f"{path}:1", data)]  # a one-record JSON Lines file named .json
    records = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{line_no}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise SiclError(f"{path}:{line_no}: {json_error(e)}") from None
    return records


def require_keys(obj: Any, keys: Iterable[str], where: str) -> dict[str, Any]:
    """The record as a dict, or a SiclError naming the first missing key (a malformed index file)."""
    if not isinstance(obj, dict):
        raise SiclError(f"{where}: expected a JSON object, got {json_type_name(obj)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise SiclError(f"{where}: missing required field(s) {', '.join(missing)}")
    return obj


def text(value: Any) -> str:
    """A field as stripped text (None -> ''). For TSV/CSV fields (always text); a JSON or parquet value
    that must be text goes through :func:`field_text`, which refuses lists and objects."""
    return "" if value is None else str(value).strip()


def field_text(value: Any) -> str | None:
    """A JSON / parquet value that must be text (an id, a question, a choice, a path), stripped: a string,
    or a number written out (an id ``7`` -> ``'7'``); ``None`` -> ``''``. Returns ``None`` for anything
    else (a list, an object, true/false): its Python repr (``"['x']"``) must never reach a manifest; the
    caller skips the row (:func:`not_text` says why)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def not_text(key: str, value: Any) -> str:
    """The problem of a field :func:`field_text` refused."""
    return f"'{key}' must be text, got {json_type_name(value)}"


def text_fields(row: dict[str, Any], keys: Sequence[str], where: str, out: Scan) -> dict[str, str] | None:
    """``keys`` of a JSON/parquet row as text (:func:`field_text`), ``keys[0]`` being its id; None, with the
    row counted as a bad row, when the id is missing or empty or a field is not text (its Python repr,
    ``"['x']"``, must never reach a manifest)."""
    fields = {k: field_text(row.get(k)) for k in keys}
    rid = fields[keys[0]]
    if rid is None:
        out.bad_rows.append((where, not_text(keys[0], row[keys[0]])))
        return None
    if not rid:
        out.bad_rows.append((where, f"empty '{keys[0]}'"))
        return None
    wrong = next((k for k in keys if fields[k] is None), None)
    if wrong is not None:
        out.bad_rows.append((where, f"id {rid!r}: {not_text(wrong, row[wrong])}"))
        return None
    return fields  # type: ignore[return-value]  (no None left)


def pick_meta(obj: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The listed keys that are present and non-empty (breakdown labels such as category/difficulty)."""
    out = {}
    for k in keys:
        v = obj.get(k)
        if v is not None and (not isinstance(v, str) or v.strip()):
            out[k] = v.strip() if isinstance(v, str) else v
    return out


def resolve_answer(answer: Any, choices: list[str]) -> str | None:
    """Map a gold answer onto one of ``choices``: exact text, a bare letter A-D.. (index into the
    choices), or the same text up to case and surrounding whitespace / trailing period. ``None`` if none."""
    ans = text(answer)
    if ans in choices:
        return ans
    if len(ans) == 1 and ans.upper() in "ABCDEFGHIJ" and ord(ans.upper()) - 65 < len(choices):
        return choices[ord(ans.upper()) - 65]
    # "(B)" / "B." forms
    m = re.fullmatch(r"\(?([A-Ja-j])[).:]?", ans)
    if m and ord(m.group(1).upper()) - 65 < len(choices):
        return choices[ord(m.group(1).upper()) - 65]
    key = _loose(ans)
    hits = [c for c in choices if _loose(c) == key]
    return hits[0] if len(hits) == 1 else None


def distinct_choices(choices: list[str], out: Scan) -> list[str]:
    """``choices`` with each option once, in order (a list that repeats an option verbatim, as some MMAU items
    do, is one question with fewer options, not an ambiguous one). Resolve a letter answer *before* this, on
    the list as published. A repaired row is counted in ``out.notes``."""
    unique = list(dict.fromkeys(choices))
    if len(unique) < len(choices):
        out.notes["list an option more than once (kept once)"] += 1
    return unique


def _loose(s: str) -> str:
    return " ".join(s.casefold().split()).rstrip(".")


def resolve_audio(base: Path, rel: str) -> Path:
    """An audio path from an index, relative to ``base`` unless absolute (``./x.wav`` works too)."""
    p = Path(rel)
    return p if p.is_absolute() else (base / p)


def single_file(folder: Path, patterns: Sequence[str], what: str, choose: str = "pass the file itself as SRC"
                ) -> Path:
    """The file in ``folder`` matched by the first glob pattern (in priority order) that matches anything;
    a clear error when nothing matches or the winning pattern matches several files (``choose`` says how
    to name the one wanted)."""
    for pat in patterns:
        found = sorted(p for p in folder.glob(pat) if p.is_file())
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(p.name for p in found[:6])
            raise SiclError(f"{folder}: several {what} files ({names}); {choose}")
    raise SiclError(f"{folder}: no {what} found (looked for {', '.join(patterns)})")


# ------------------------------------------------------------------------------------------- importing

def decode_all(scan: Scan, max_seconds: float, strict: bool, jobs: int = 1
               ) -> tuple[list[Example], list[tuple[Candidate, str]]]:
    """Decode every candidate's audio once: sets ``duration`` and sorts rows into kept and bad.

    Under ``strict`` the first bad clip raises (naming the file and the source line).
    """
    from sicl.progress import progress as tqdm  # imported here: only needed when something is decoded

    def check(c: Candidate) -> float | str:
        try:
            wav = load_audio(scan.source(c.example.audio), max_seconds=max_seconds)
        except AudioError as e:
            return str(e).replace(str(scan.source(c.example.audio)), c.example.audio)
        return round(len(wav) / SAMPLE_RATE, 3)

    kept: list[Example] = []
    bad: list[tuple[Candidate, str]] = list(scan.bad_audio)
    if strict and bad:
        c, problem = bad[0]
        raise SiclError(f"{c.where}: {problem}")
    cands = scan.candidates
    with tqdm(total=len(cands), desc=PROG, unit="clip", file=sys.stderr, disable=None, leave=False) as bar:
        for c, result in zip(cands, _map(check, cands, jobs), strict=True):
            bar.update()
            if isinstance(result, str):
                if strict:
                    raise SiclError(f"{c.where}: {result}")
                bad.append((c, result))
            elif result < scan.min_seconds:
                scan.drop(f"shorter than {scan.min_seconds:g} s")
            else:
                c.example.duration = result
                kept.append(c.example)
    return kept, bad


def _map(fn: Callable[[Candidate], Any], items: list[Candidate], jobs: int) -> Iterator[Any]:
    """Ordered map, threaded when ``jobs > 1`` (libsndfile and soxr release the GIL while decoding).
    Work is submitted in chunks so a million-row corpus does not create a million futures at once."""
    if jobs <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        it = iter(items)
        while chunk := list(itertools.islice(it, 256 * jobs)):
            yield from pool.map(fn, chunk)


def unique_ids(examples: list[Example], prefix: str = "") -> list[str]:
    """Apply ``prefix`` and make ids unique in place: the first ``x`` keeps its id, later ones become
    ``x~2``, ``x~3``, ... (skipping any such name the corpus already uses). Returns the repeated ids."""
    taken = {prefix + ex.id for ex in examples}
    used: set[str] = set()
    repeated: list[str] = []
    for ex in examples:
        base = new = prefix + ex.id
        if base in used:
            if base not in repeated:
                repeated.append(base)
            n = 1
            while new in used or new in taken:
                n += 1
                new = f"{base}{DUP_SEP}{n}"
        used.add(new)
        ex.id = new
    return repeated


def warn(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOW])
    return shown + (", ..." if len(items) > SHOW else "")


def finish(scan: Scan, out: Path, *, max_seconds: float, strict: bool, jobs: int = 1,
           id_prefix: str = "", source: str = "") -> int:
    """Decode, report, write. Returns the number of rows written. Nothing is written when it raises."""
    try:
        check_out(out)  # also checked by the CLI before the scan; here for the Python entry point
        check_max_seconds(max_seconds)
        check_not_input(out, scan)
        if strict and scan.bad_rows:
            where, problem = scan.bad_rows[0]
            raise SiclError(f"{where}: {problem}")
        total = len(scan.candidates) + len(scan.bad_rows) + len(scan.bad_audio)
        kept, bad = decode_all(scan, max_seconds, strict, jobs)
        if not kept:
            raise SiclError(f"{source or 'source'}: no usable rows ({_why_none(scan, bad)}){_first(scan, bad)}")
        repeated = unique_ids(kept, id_prefix)
        moved = scan.commit(kept)
        try:
            write_manifest(out, kept)
        except BaseException:
            scan.rollback_commit(moved)
            raise
        for _, backup in moved:  # the earlier run's files that were replaced: no longer needed
            if backup is not None:
                backup.unlink(missing_ok=True)
    except OSError as e:
        raise SiclError(f"{e.filename or out}: cannot write ({e.strerror})") from None
    finally:
        scan.cleanup()  # staged audio that no kept row uses (bad clips, a failed run) goes with it
    if scan.bad_rows:
        warn(f"skipped {len(scan.bad_rows)} of {total} rows that do not fit the manifest: "
             + _names([f"{w} ({p})" for w, p in scan.bad_rows]))
    if bad:
        warn(f"skipped {len(bad)} of {total} rows with bad audio: "
             + _names([f"{Path(c.example.audio).name} ({_reason(msg)})" for c, msg in bad]))
    if scan.dropped:
        parts = ", ".join(f"{n} {why}" for why, n in scan.dropped.most_common())
        warn(f"left out {sum(scan.dropped.values())} rows on purpose: {parts}")
    if scan.notes:
        warn("note: " + ", ".join(f"{n} rows {what}" for what, n in scan.notes.most_common()))
    if repeated:
        warn(f"{len(repeated)} id(s) occur more than once; repeats renamed with a '{DUP_SEP}N' suffix: "
             + _names(repeated))
    print(f"wrote {len(kept)} rows to {out}")
    return len(kept)


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that cannot be written, before any work is done (one line, no traceback)."""
    out = Path(out)
    if out.is_dir():
        raise SiclError(f"{out}: --out is a folder; give a file name such as {out / 'manifest.jsonl'}")
    parent = out.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SiclError(f"{out}: --out is below {existing}, which is not a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise SiclError(f"{out}: cannot write here ({existing} is not writable)")
    if out.exists() and not os.access(out, os.W_OK) and not os.access(parent, os.W_OK):
        raise SiclError(f"{out}: cannot write here (not writable)")


def check_not_input(out: Path, scan: Scan) -> None:
    """Refuse an ``--out`` that is (after symlinks) one of the files the import reads: an index file, or
    a row's audio. Writing the manifest there would destroy the corpus."""
    out = Path(out)
    try:
        real = out.resolve()
        st = os.stat(real)
        key: tuple[int, int] | None = (st.st_dev, st.st_ino)
    except FileNotFoundError:  # then it is no file the import read (but maybe a clip the index names)
        key = None
    except (OSError, RuntimeError):  # unreadable, a symlink loop: check_out or the write reports it
        return

    def same(path: str | Path) -> bool:
        try:
            if key is not None:  # one stat: any symlink (or hard link) to out matches
                other = os.stat(path)
                return (other.st_dev, other.st_ino) == key
            return Path(path).resolve() == real
        except (OSError, RuntimeError):
            return False

    hit = next((f"the index {p}" for p in scan.inputs if same(p)), None) if key is not None else None
    if hit is None:  # audio files are many: only those with out's name can be it (a cheap test first)
        names = {out.name, real.name}
        rows = [*scan.candidates, *(c for c, _ in scan.bad_audio)]
        hit = next((f"the audio of {c.where}" for c in rows
                    if Path(c.example.audio).name in names and same(c.example.audio)), None)
    if hit is not None:
        raise SiclError(f"--out {out} is an input of this import ({hit}); choose another path")


def check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise SiclError(f"--jobs must be at least 1 (clips decoded at a time), not {jobs}")


def _reason(message: str) -> str:
    """The part of an AudioError message after 'FILE: '."""
    head, sep, tail = message.partition(": ")
    return tail if sep else message


def _why_none(scan: Scan, bad: list) -> str:
    parts = []
    if scan.bad_rows:
        parts.append(f"{len(scan.bad_rows)} rows do not fit the manifest")
    if bad:
        parts.append(f"{len(bad)} with bad audio")
    parts += [f"{n} {why}" for why, n in scan.dropped.items()]
    return "; ".join(parts) or "the index holds no rows"


def _first(scan: Scan, bad: list) -> str:
    """The first problem, so the user need not rerun with --strict to see why nothing was usable."""
    if scan.bad_rows:
        where, problem = scan.bad_rows[0]
        return f"; first: {where}: {problem}"
    if bad:
        c, problem = bad[0]
        return f"; first: {c.where}: {problem}"
    return ""
