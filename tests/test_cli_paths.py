"""A path the filesystem refuses (a file where an output folder must go, a read-only folder) is one line, not a
traceback, for every command (`sicl.guard.disk_error`, used by the command line's last resort)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from sicl.cli.main import main
from sicl.guard import disk_error
from tests.test_report import make_study


@pytest.mark.parametrize(("code", "words"), [
    (errno.EACCES, "permission denied; choose another path or fix its permissions"),
    (errno.EROFS, "read-only file system"),
    (errno.ENOTDIR, "a part of the path is a file, not a folder; choose another path"),
    (errno.EEXIST, "exists and is not a folder"),
])
def test_a_refused_path_is_one_line_naming_it(code: int, words: str):
    err = disk_error(OSError(code, "x", "/data/out/run"))
    assert err is not None and str(err).startswith(f"cannot use /data/out/run: {words}")
    assert "\n" not in str(err)


def test_other_os_errors_are_left_to_the_traceback():
    assert disk_error(OSError(errno.EACCES, "denied")) is None  # no path named: nothing to tell the user
    assert disk_error(OSError(errno.EIO, "io", "/x")) is None
    assert "no space left" in str(disk_error(OSError(errno.ENOSPC, "full", "/x")))


def test_report_into_a_file_is_one_line_and_leaves_the_file(tmp_path: Path, capsys):
    study = make_study(tmp_path)
    blocker = tmp_path / "afile"
    blocker.write_text("mine\n")
    assert main(["report", str(study), "--out", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err == f"sicl report: error: cannot use {blocker}: exists and is not a folder; choose another path\n"
    assert main(["report", str(study), "--out", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sicl report: error: cannot use ") and err.count("\n") == 1 and "Traceback" not in err
    assert blocker.read_text() == "mine\n"
