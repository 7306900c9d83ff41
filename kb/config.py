"""Settings, read once: defaults < config file (kb.toml) < environment (KB_*) < command-line flags.

No other module reads the environment; the `Settings` object is passed in.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_VARS = {
    "KB_CORPUS": "corpus folders, separated by the OS path separator (':' here)",
    "KB_INDEX": "index folder",
    "KB_MODEL": "encoder: 'use-multilingual-v3' (bundled) or a sentence-transformers model name/folder",
    "KB_DENSE": "'0' to build and search without the dense channel",
    "KB_ADMIN_TOKEN": "enables the admin pages and is required to use them",
    "KB_CONFIG": "path of a kb.toml config file (default ./kb.toml when present)",
    "KB_TRUST_PROXY": "number of reverse proxies in front of `kb serve` whose X-Forwarded-For/-Proto/-Host to believe",
    "KB_BACKEND": "where channel scores are computed: 'embedded' (the index folder) or 'milvus'",
    "KB_MILVUS_URI": "milvus backend: a milvus-lite file path (*.db) or a server URL such as http://host:19530",
    "KB_MILVUS_TOKEN": "milvus backend: the token ('user:password' or an API key) when the server needs one",
}
BACKENDS = ("embedded", "milvus")
MIN_ADMIN_TOKEN_CHARS = 24
MAX_TRUSTED_PROXIES = 5


def short_token_message(token: str) -> str:
    """Return why an admin token is refused and how to make a good one."""
    return (f"KB_ADMIN_TOKEN is {len(token)} characters; it must be at least {MIN_ADMIN_TOKEN_CHARS}. Make one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"')


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable; see README 'Configuration'."""

    corpus_dirs: tuple[Path, ...] = (Path("corpus"),)
    index_dir: Path = Path("index")
    model: str = "use-multilingual-v3"
    dense: bool = True
    admin_token: str = ""
    host: str = "127.0.0.1"
    port: int = 5000
    trust_proxy: int = 0  # reverse proxies in front whose X-Forwarded-* headers are believed
    backend: str = "embedded"  # embedded | milvus (kb/backends)
    milvus_uri: str = ""  # "" = a milvus-lite file inside the index folder
    milvus_token: str = ""
    extra: dict = field(default_factory=dict)

    def with_overrides(self, **kwargs) -> "Settings":
        """Return a copy with the given non-None values replaced (CLI flags)."""
        clean = {k: v for k, v in kwargs.items() if v is not None and v != ()}
        if "corpus_dirs" in clean:
            clean["corpus_dirs"] = tuple(Path(p) for p in clean["corpus_dirs"])
        if "index_dir" in clean:
            clean["index_dir"] = Path(clean["index_dir"])
        return replace(self, **clean)


def check_admin_token(token: str) -> None:
    """Raise ConfigError when an admin token is set but too short to resist guessing."""
    if token and len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(short_token_message(token))


def _parse_proxies(name: str, value) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_TRUSTED_PROXIES:
        raise ConfigError(f"{name} must be a whole number of proxies from 0 to {MAX_TRUSTED_PROXIES}, not {value!r}")
    return n


def _parse_backend(name: str, value) -> str:
    v = str(value).strip().lower()
    if v not in BACKENDS:
        raise ConfigError(f"{name} must be one of {', '.join(BACKENDS)}, not {value!r}")
    return v


def _parse_bool(name: str, value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0/true/false, not {value!r}")


def load_settings(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Return settings from defaults, the config file and the environment."""
    env = dict(os.environ if environ is None else environ)
    cwd = Path(cwd or Path.cwd())
    values: dict = {}
    cfg_path = Path(env["KB_CONFIG"]) if env.get("KB_CONFIG") else cwd / "kb.toml"
    if env.get("KB_CONFIG") and not cfg_path.is_file():
        raise ConfigError(f"KB_CONFIG points to {cfg_path}, which does not exist")
    if cfg_path.is_file():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path}: not valid TOML ({exc})") from exc
        section = data.get("kb", data)
        if "corpus" in section:
            corpus = section["corpus"]
            values["corpus_dirs"] = tuple(Path(p) for p in ([corpus] if isinstance(corpus, str) else corpus))
        for key, attr in (("index", "index_dir"), ("model", "model"), ("host", "host")):
            if key in section:
                values[attr] = Path(section[key]) if attr == "index_dir" else str(section[key])
        if "port" in section:
            values["port"] = int(section["port"])
        if "dense" in section:
            values["dense"] = _parse_bool("dense", section["dense"])
        if "trust_proxy" in section:
            values["trust_proxy"] = _parse_proxies("trust_proxy", section["trust_proxy"])
        if "backend" in section:
            values["backend"] = _parse_backend("backend", section["backend"])
        if "milvus_uri" in section:
            values["milvus_uri"] = str(section["milvus_uri"])
    if env.get("KB_CORPUS"):
        values["corpus_dirs"] = tuple(Path(p) for p in env["KB_CORPUS"].split(os.pathsep) if p)
    if env.get("KB_INDEX"):
        values["index_dir"] = Path(env["KB_INDEX"])
    if env.get("KB_MODEL"):
        values["model"] = env["KB_MODEL"]
    if env.get("KB_DENSE"):
        values["dense"] = _parse_bool("KB_DENSE", env["KB_DENSE"])
    if env.get("KB_ADMIN_TOKEN"):
        values["admin_token"] = env["KB_ADMIN_TOKEN"]
    if env.get("KB_TRUST_PROXY"):
        values["trust_proxy"] = _parse_proxies("KB_TRUST_PROXY", env["KB_TRUST_PROXY"])
    if env.get("KB_BACKEND"):
        values["backend"] = _parse_backend("KB_BACKEND", env["KB_BACKEND"])
    if env.get("KB_MILVUS_URI"):
        values["milvus_uri"] = env["KB_MILVUS_URI"]
    if env.get("KB_MILVUS_TOKEN"):
        values["milvus_token"] = env["KB_MILVUS_TOKEN"]
    return Settings(**values)
