"""Bad manifest / transcript-table input: a one-line error naming the file, the line and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

from sicl.cli.main import main
from sicl.data.manifest import iter_lines, read_manifest
from sicl.testing import write_tone


def rows_bytes(n: int, width: int = 200) -> list[bytes]:
    return [json.dumps({"id": f"r{i}", "audio": "a.wav", "task": "asr", "target": "x" * width}).encode()
            for i in range(n)]


def validate(capsys, path: Path) -> tuple[int, list[str], str]:
    rc = main(["validate", str(path), "--no-audio"])
    cap = capsys.readouterr()
    return rc, cap.out.strip().splitlines(), cap.err


def test_bad_utf8_is_reported_on_its_own_line_and_the_rest_is_still_read(tmp_path, capsys):
    rows = rows_bytes(60)  # 60 rows of ~270 bytes: the bad byte lies well past the first 8 KB
    rows[40] = rows[40].replace(b'"xx', b'"\xe9x', 1)
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    rc, out, err = validate(capsys, path)
    assert rc == 1 and "Traceback" not in err
    assert out[:-1] == [f"{path}:line 41: line is not valid UTF-8 (bad byte 0xe9 at byte 59 of the line)"]
    assert out[-1] == f"{path}: 1 problem(s) on 1 of 60 rows"


def test_bad_utf8_in_a_small_file_names_its_line(tmp_path):
    rows = rows_bytes(4, width=3)
    rows[2] = rows[2].replace(b'"xxx', b'"\xe9xx', 1)
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    got = [(n, err is None) for n, _, err in iter_lines(path)]
    assert got == [(1, True), (2, True), (3, False), (4, True)]


def test_crlf_lone_cr_blank_lines_and_bom(tmp_path):
    r = rows_bytes(3, width=1)
    path = tmp_path / "m.jsonl"
    path.write_bytes(r[0] + b"\r\n\r\n" + r[1] + b"\r" + r[2])  # CRLF, a blank line, a lone CR, no final EOL
    assert [n for n, _, err in iter_lines(path) if err is None] == [1, 3, 4]
    assert [ex.id for ex in read_manifest(path)] == ["r0", "r1", "r2"]
    # a UTF-8 BOM at the start of the file (Notepad, Excel) is skipped; one inside a later line is still an error
    path.write_bytes(b"\xef\xbb\xbf" + r[0] + b"\r\n\xef\xbb\xbf" + r[1] + b"\r\n")
    ((n1, obj1, err1), (n2, obj2, err2)) = list(iter_lines(path))
    assert (n1, obj1["id"], err1) == (1, "r0", None)
    assert n2 == 2 and obj2 is None and "BOM" in err2


def test_empty_manifest_is_one_clear_line(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    rc, out, err = validate(capsys, path)
    assert rc == 1 and not err
    assert out == [f"{path}: manifest holds no rows", f"{path}: 1 problem(s), no rows to check"]


def test_json_wording(tmp_path, capsys):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "a\nnull\n"s"\n3\n[1]\ntrue\n{"id": 1, "audio": "a.wav", "task": "asr"}\n')
    rc, out, _ = validate(capsys, path)
    assert rc == 1
    assert out[0] == f"{path}:line 1: invalid JSON (Unterminated string starting at column 8)"
    kinds = [line.split(": row is a JSON ")[1].split(",")[0] for line in out[1:6]]
    assert kinds == ["null", "string", "number", "array", "true"]
    assert "field 'id' must be a string, got number" in out[6]
    assert "NoneType" not in "\n".join(out) and "at at" not in "\n".join(out)


def test_folder_unterminated_quote_is_refused(tmp_path, capsys):
    root = tmp_path / "c"
    for i in range(3):
        write_tone(root / f"adult-test-0000{i}.flac", 0.3)
    out = tmp_path / "o.jsonl"
    table = root / "metadata.csv"
    cases = {  # table body -> (line named, message)
        'adult-test-00000.flac,ok\nadult-test-00001.flac,"unterminated\nadult-test-00002.flac,x\n':
            (3, "unterminated quote"),
        'adult-test-00000.flac,"two\nlines"\nadult-test-00001.flac,x\n': (2, "runs over several lines"),
    }
    for body, (line, message) in cases.items():
        table.write_text("file,text\n" + body)
        rc = main(["prepare", "folder", str(root), "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 1 and not out.exists()
        assert err.count("\n") == 1 and f"{table}:{line}: " in err and message in err, err
    table.write_text('file,text\r\nadult-test-00000.flac,"a, b"\r\n\r\nadult-test-00001.flac,x\r\n')
    assert main(["prepare", "folder", str(root), "--out", str(out)]) == 0
    assert [ex.target for ex in read_manifest(out)] == ["a, b", "x"]
