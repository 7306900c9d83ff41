"""The README documents every `kb` command, every option of it and every setting, so the docs cannot rot."""

from __future__ import annotations

from kb.cli import cli
from kb.config import ENV_VARS, declared_settings

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_command_and_option_is_documented():
    for name, command in cli.commands.items():
        assert f"kb {name}" in README, f"`kb {name}` is not in the README"
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in ("--help",):
                    assert opt in README, f"`kb {name} {opt}` is not in the README"


def _configuration_rows() -> list[list[str]]:
    """The cells of each row of the README's Configuration table (environment | kb.toml key | default | meaning)."""
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| environment")]


def test_every_setting_is_documented():
    for var in ENV_VARS:
        assert var in README, f"{var} is not in the README"
    rows = _configuration_rows()
    for f in declared_settings():
        env, key = f.metadata["env"], f.metadata["toml"]
        want_env = f"`{env}`" if env else "—"
        want_key = f"`{key}`" if key else "—"
        assert any(row[0] == want_env and row[1].split(" ")[0] == want_key for row in rows), (
            f"setting {f.name} ({env or 'no variable'}, kb.toml {key or 'no key'}) has no row in README 'Configuration'")
