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
def test_every_command_has_its_own_module_and_help_that_ends_with_an_example(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and name in out
    tail = out.rstrip().split("examples:\n")[-1].splitlines()
    assert "examples:" in out and tail and all(line.strip().startswith(f"sicl {name}") for line in tail)


def test_the_input_manifest_is_data_everywhere_and_old_names_still_work(capsys):
    import argparse

    from sicl.cli.main import build_parser

    for name, old in (("retrieve", "--queries"), ("codes", "--manifest"), ("eval", None), ("validate", None)):
        parser = build_parser(name)
        sub = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith(name))
        flags = {o for a in sub._actions for o in a.option_strings}
        assert "--data" in flags and (old is None or old in flags), name
        if name in ("retrieve", "codes", "eval"):
            assert "--threads" in flags
    assert isinstance(build_parser("train"), argparse.ArgumentParser)


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "sicl", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("sicl ")


def test_a_closed_stdout_pipe_is_no_traceback(tmp_path):
    """`sicl score ... | head` when head has gone: exit 141 (SIGPIPE's code), nothing on stderr."""
    import subprocess
    import sys

    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "a", "task": "asr", "target": "the cat", "prediction": "the cat"}\n')
    p = subprocess.Popen([sys.executable, "-m", "sicl", "score", str(preds)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before sicl writes (it is still importing)
    err = p.stderr.read().decode()
    assert p.wait() == 141 and "Traceback" not in err, err
