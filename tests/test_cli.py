import subprocess
import sys

import pytest

from sicl.cli.main import COMMANDS, main


def test_full_command_set_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ["prepare", "validate", "synth", "models", "retrieve", "train", "eval", "score", "report",
                 "demo", "codes"]:
        assert name in COMMANDS and name in out


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_its_own_module_and_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0 and name in capsys.readouterr().out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "sicl", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sicl ")
