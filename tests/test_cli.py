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
    # the 2020 and 2025 款项支付条例 share 第三条: printed once, the outdated version named under it
    r = runner.invoke(cli, ["ask", "本条例所称中小企业", "-k", "3"])
    headers = [line for line in r.output.splitlines() if line.startswith("[") and "第三条 本条例所称中小企业" in line]
    assert r.exit_code == 0 and len(headers) == 1, r.output
    assert "同文亦见于" in r.output and "/doc/baozhang-zhongxiaoqiye-kuanxiang-zhifu-tiaoli-2020#" in r.output

    for args in (["ask", " "], ["ask", "x", "-k", "abc"], ["ask", "x", "--index", str(tmp_path / "none")],
                 ["build", "--corpus", str(tmp_path / "missing")]):
        r = runner.invoke(cli, args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
        assert r.output.strip().startswith("kb: error:") or "Error" in r.output
