"""``report.html``: the report as one self-contained page (docs/report.md).

Everything ``report.md`` says (rendered with markdown-it-py, plots inlined as data URIs), plus a *Listen* section:
for a few queries of each eval set, audio players for the query and its demonstrations (the clips inlined, so the
page works when mailed or opened from another machine), their transcripts, and every method's output side by side
at its headline k with the word errors marked against the reference (substitutions, insertions, deletions).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from sicl.report.collect import Run, sort_eval_sets, sort_methods
from sicl.report.reading import Results

_MIME = {".flac": "audio/flac", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".png": "image/png"}
#: clips larger than this are linked, not inlined (keeps a report of long recordings openable)
MAX_INLINE_BYTES = 2_000_000

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}img{max-width:100%}code{background:#f4f4f4;padding:0 .2em}
.ex{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.ex audio{height:2em;vertical-align:middle}.demo{color:#555;font-size:92%}
.sub{background:#ffe08a}.ins{background:#bfe3ff}.del{background:#ffc4c4;text-decoration:line-through}
.legend span{padding:0 .4em;margin-right:.6em}
"""


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) > MAX_INLINE_BYTES:
        return None
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def _player(audio: str | None) -> str:
    if not audio:
        return "<em>(no audio)</em>"
    uri = _data_uri(Path(audio))
    src = uri or Path(audio).resolve().as_uri()
    return f'<audio controls preload="none" src="{html.escape(src)}"></audio>'


def marked_errors(reference: str, hypothesis: str) -> str:
    """The hypothesis as HTML with word errors against the reference marked (Whisper-normalised words,
    jiwer's alignment): substituted words yellow, inserted blue, deleted reference words struck through red."""
    import jiwer
    from whisper_normalizer.english import EnglishTextNormalizer

    norm = EnglishTextNormalizer()
    ref, hyp = norm(reference or "").split(), norm(hypothesis or "").split()
    if not ref or not hyp:
        return html.escape(hypothesis or "") or "<em>(empty)</em>"
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    parts: list[str] = []
    for chunk in out.alignments[0]:
        r = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type == "equal":
            parts.append(html.escape(" ".join(h)))
        elif chunk.type == "substitute":
            parts += [f'<span class="sub" title="{html.escape(a)}">{html.escape(b)}</span>' for a, b in zip(r, h, strict=True)]
        elif chunk.type == "insert":
            parts.append(f'<span class="ins">{html.escape(" ".join(h))}</span>')
        else:
            parts.append(f'<span class="del">{html.escape(" ".join(r))}</span>')
    return " ".join(parts)


def _predictions(run: Run) -> dict[str, dict[str, Any]]:
    path = run.path / "predictions.jsonl"
    rows: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):
        return {}
    for line in lines:
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:  # a truncated or garbled line only costs that example
            continue
        qid = row.get("id") if isinstance(row, dict) else None
        if isinstance(qid, str | int) and not isinstance(qid, bool):
            rows[str(qid)] = row
    return rows


def _text(v: object) -> str:
    """A predictions.jsonl field as text (numbers and other JSON values included; None is empty)."""
    return "" if v is None else v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def _pool(run: Run) -> dict[str, Any]:
    from sicl.data.manifest import read_manifest

    pool = run.info.get("pool") if isinstance(run.info, dict) else None
    if not pool:
        return {}
    try:
        return {ex.id: ex for ex in read_manifest(pool)}
    except Exception:  # noqa: BLE001 - a moved pool only costs the demonstrations' audio
        return {}


def examples_section(runs: list[Run], res: Results, per_set: int = 3) -> str:
    """The *Listen* section (HTML) for the eval sets with ASR or ST predictions."""
    blocks: list[str] = []
    for eval_set in sort_eval_sets({r.eval_set for r in runs}):
        chosen: dict[str, Run] = {}
        for method in sort_methods({r.method for r in runs if r.eval_set == eval_set}):
            k = res.headline_k(method, eval_set)
            run = next((r for r in runs if r.method == method and r.eval_set == eval_set and r.k == k), None)
            if run is not None:
                chosen[method] = run
        preds = {m: _predictions(r) for m, r in chosen.items()}
        preds = {m: p for m, p in preds.items() if p}
        if not preds:
            continue
        with_demos = next((m for m in preds if chosen[m].k > 0), None)
        ids = [i for i in next(iter(preds.values())) if all(i in p for p in preds.values())][:per_set]
        if not ids:
            continue
        pool = _pool(chosen[with_demos]) if with_demos else {}
        items = []
        for qid in ids:
            first = next(iter(preds.values()))[qid]
            ref = _text(first.get("target"))
            audio = first.get("audio")
            lines = [f"<p><b>{html.escape(qid)}</b> {_player(audio if isinstance(audio, str) else None)} reference: "
                     f"<i>{html.escape(ref)}</i></p>"]
            if with_demos:
                demo_ids = preds[with_demos][qid].get("demos") or []
                demo_ids = [_text(d) for d in (demo_ids if isinstance(demo_ids, list) else [demo_ids])]
                lines.append(f'<div class="demo">demonstrations ({html.escape(with_demos)}, k={len(demo_ids)}):<ul>')
                for d in demo_ids:
                    ex = pool.get(d)
                    lines.append(f"<li>{html.escape(d)} {_player(ex.audio if ex else None)} "
                                 f"{html.escape((ex.target or '') if ex else '')}</li>")
                lines.append("</ul></div>")
            rows = []
            for method, p in preds.items():
                row = p[qid]
                task = row.get("task", "asr")
                prediction = _text(row.get("prediction"))
                shown = marked_errors(ref, prediction) if task == "asr" else html.escape(prediction)
                rows.append(f"<tr><td>{html.escape(method)}</td><td>{html.escape(_text(row.get('k')))}</td>"
                            f"<td>{shown}</td></tr>")
            lines.append("<table><tr><th>method</th><th>k</th><th>output</th></tr>" + "".join(rows) + "</table>")
            items.append('<div class="ex">' + "".join(lines) + "</div>")
        blocks.append(f"<h3>{html.escape(eval_set)}</h3>" + "".join(items))
    if not blocks:
        return ""
    legend = ('<p class="legend">Word errors against the reference (Whisper-normalised): <span class="sub">'
              'substituted</span><span class="ins">inserted</span><span class="del">deleted</span></p>')
    return "<h2 id=\"listen\">Listen: example queries</h2>" + legend + "".join(blocks)


def render_html(markdown_text: str, folder: Path, title: str, listen: str) -> str:
    """The page: ``report.md`` rendered (its ``plots/*.png`` inlined from ``folder``) followed by ``listen``."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)

    def inline(m: re.Match) -> str:
        uri = _data_uri(folder / html.unescape(m.group(1)))
        return f'src="{uri}"' if uri else m.group(0)

    body = re.sub(r'src="(plots/[^"]+)"', inline, body)
    # the Listen section goes before Settings, where a reader looking at results expects it
    cut = body.find("<h2>Settings")
    body = body + listen if cut < 0 else body[:cut] + listen + body[cut:]
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")
