import subprocess
import sys

import pytest

from sicl.cli.main import COMMANDS, main


def test_full_command_set_is_listed(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ["prepare", "validate", "synth", "models", "retrieve", "train", "eval", "score", "report",
                 "demo"]:
        assert name in COMMANDS and name in out


@pytest.mark.parametrize("name", [n for n, (m, _) in COMMANDS.items() if m == "sicl.cli.pending"])
def test_commands_not_built_yet_say_so_and_exit_2(name, capsys):
    assert main([name]) == 2
    assert "not implemented yet" in capsys.readouterr().err


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "sicl", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sicl ")
