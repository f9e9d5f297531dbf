"""Progress in non-terminal logs: a line now and then, not a flood and not silence."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from sicl.progress import LogProgress, progress

ROOT = Path(__file__).resolve().parent.parent


def test_log_progress_prints_occasional_whole_lines_and_a_last_one():
    buf = io.StringIO()
    bar = progress(total=1000, desc="eval k=3", unit="query", file=buf, interval=0.0, leave=False, disable=None)
    assert isinstance(bar, LogProgress)
    for _ in range(3):
        bar.update(100)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in buf.getvalue()
    assert lines[0].startswith("eval k=3: 100/1000 query (10%)") and "left" in lines[0]
    assert lines[-1].startswith("eval k=3: 300/1000 query (30%)") and "done in" in lines[-1]
    quiet = io.StringIO()
    with LogProgress(total=5, desc="short", file=quiet, interval=30) as bar:  # a quick inner loop says nothing
        bar.update(5)
    assert quiet.getvalue() == ""
    assert list(LogProgress(range(3), file=io.StringIO())) == [0, 1, 2]


def test_synth_into_a_log_file_is_a_few_lines(tmp_path):
    res = subprocess.run([sys.executable, "-c", "import sys; from sicl.cli.main import main; "
                          "from sicl.data.synth import world as W; "
                          "W.SIZES['small'] = {d: (2, 2, 2) for d in W.SIZES['small']}; "
                          "sys.exit(main(['synth', '--out', sys.argv[1], '--size', 'small']))",
                          str(tmp_path / "w")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"SICL_PROGRESS_SECONDS": "0", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("synth:")]
    from sicl.data.synth import world as W

    n = 2 * 3 * len(W.SIZES["small"])  # 2 clips per split, 3 splits per domain
    assert "\r" not in res.stderr and 1 <= len(lines) <= n + 4 and f"{n}/{n} clip (100%)" in lines[-1]
