"""Settings: defaults < kb.toml < environment, every declared setting read from where it is declared."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.config import ConfigError, Settings, declared_settings, load_settings


def test_defaults_without_file_or_environment(tmp_path):
    assert load_settings({}, cwd=tmp_path) == Settings()


def test_toml_then_environment(tmp_path):
    (tmp_path / "kb.toml").write_text(
        '[kb]\ncorpus = ["a", "b"]\nindex = "idx"\nmodel = "m"\ndense = false\nhost = "0.0.0.0"\nport = 8080\n'
        "trust_proxy = 1\n", encoding="utf-8")
    s = load_settings({}, cwd=tmp_path)
    assert s == Settings(corpus_dirs=(Path("a"), Path("b")), index_dir=Path("idx"), model="m", dense=False,
                         host="0.0.0.0", port=8080, trust_proxy=1)
    s = load_settings({"KB_CORPUS": "x:y", "KB_INDEX": "i2", "KB_DENSE": "1", "KB_TRUST_PROXY": "2",
                       "KB_MODEL": "m2", "KB_ADMIN_TOKEN": "t" * 30, "KB_INDEX_UNKNOWN": "ignored"}, cwd=tmp_path)
    assert s == Settings(corpus_dirs=(Path("x"), Path("y")), index_dir=Path("i2"), model="m2", dense=True,
                         admin_token="t" * 30, host="0.0.0.0", port=8080, trust_proxy=2)


def test_every_declared_setting_is_read_from_its_variable_or_key(tmp_path):
    for f in declared_settings():
        assert f.metadata["env"] or f.metadata["toml"], f.name
        assert f.metadata["help"], f.name


@pytest.mark.parametrize("env, toml, names", [
    ({"KB_DENSE": "maybe"}, "", "KB_DENSE"),
    ({"KB_TRUST_PROXY": "9"}, "", "KB_TRUST_PROXY"),
    ({}, "dense = 3\n", "dense"),
    ({}, 'port = "eighty"\n', "port"),
    ({}, "trust_proxy = -1\n", "trust_proxy"),
    ({}, "not toml [", "not valid TOML"),
    ({"KB_CONFIG": "/nonexistent/kb.toml"}, "", "KB_CONFIG"),
])
def test_bad_values_name_the_setting(tmp_path, env, toml, names):
    if toml:
        (tmp_path / "kb.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError, match=names):
        load_settings(env, cwd=tmp_path)
