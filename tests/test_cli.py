"""The command line: help, exit codes, one-line reasons."""
from __future__ import annotations

import pytest

from prunekit.cli import main


def test_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_unknown_command_exits_nonzero():
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code != 0
