"""The `kb` command: build, ask (text and JSON), clear errors with exit status 2."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from kb.cli import cli

from conftest import CORPUS


def test_build_ask_json_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_DENSE", "0")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(CORPUS, tmp_path / "corpus")
    runner = CliRunner()
    r = runner.invoke(cli, ["build"])
    assert r.exit_code == 0, r.output
    assert "built" in r.output
    r = runner.invoke(cli, ["build"])
    assert r.exit_code == 0 and "up to date" in r.output
    r = runner.invoke(cli, ["ask", "特色金融助力工程", "--json", "-k", "2"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["results"][0]["clause_path"][-1] == "特色金融助力工程"
    r = runner.invoke(cli, ["ask", "特色金融助力工程"])
    assert r.exit_code == 0 and "特色金融助力工程" in r.output and "/doc/" in r.output

    for args in (["ask", " "], ["ask", "x", "-k", "abc"], ["ask", "x", "--index", str(tmp_path / "none")],
                 ["build", "--corpus", str(tmp_path / "missing")]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
        assert r.output.strip().startswith("kb: error:") or "Error" in r.output
