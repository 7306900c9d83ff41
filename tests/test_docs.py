"""The README documents every `kb` command, every option of it and every setting, so the docs cannot rot."""

from __future__ import annotations

from kb.cli import cli
from kb.config import ENV_VARS

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_command_and_option_is_documented():
    for name, command in cli.commands.items():
        assert f"kb {name}" in README, f"`kb {name}` is not in the README"
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in ("--help",):
                    assert opt in README, f"`kb {name} {opt}` is not in the README"


def test_every_setting_is_documented():
    for var in ENV_VARS:
        assert var in README, f"{var} is not in the README"
