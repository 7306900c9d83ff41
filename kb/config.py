"""Settings, read once: defaults < config file (kb.toml) < environment (KB_*) < command-line flags.

Each setting is declared once, as a field of `Settings` made by `setting()`: its name, type and
default, its environment variable, its kb.toml key, how a text value is parsed and a line of help.
`load_settings`, `ENV_VARS` and the README test (tests/test_docs.py) all read that declaration.
No other module reads the environment; the `Settings` object is passed in.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

BACKENDS = ("embedded", "milvus")
MIN_ADMIN_TOKEN_CHARS = 24
MAX_TRUSTED_PROXIES = 5


def short_token_message(token: str) -> str:
    """Return why an admin token is refused and how to make a good one."""
    return (f"KB_ADMIN_TOKEN is {len(token)} characters; it must be at least {MIN_ADMIN_TOKEN_CHARS}. Make one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"')


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it."""


def _parse_proxies(name: str, value) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        n = -1
    if not 0 <= n <= MAX_TRUSTED_PROXIES:
        raise ConfigError(f"{name} must be a whole number of proxies from 0 to {MAX_TRUSTED_PROXIES}, not {value!r}")
    return n


def _parse_backend(name: str, value: Any) -> str:
    v = str(value).strip().lower()
    if v not in BACKENDS:
        raise ConfigError(f"{name} must be one of {', '.join(BACKENDS)}, not {value!r}")
    return v


def _parse_bool(name: str, value: Any) -> bool:
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0/true/false, not {value!r}")


MILVUS_MAX_TOPK = 16384  # Milvus's limit on the rows one search returns
MILVUS_MAX_REPLICAS = 64


def _within(low: int, high: int, what: str) -> Callable[[str, Any], int]:
    def parse(name: str, value: Any) -> int:
        try:
            n = int(str(value).strip())
        except ValueError:
            n = low - 1
        if not low <= n <= high:
            raise ConfigError(f"{name} must be a whole number of {what} from {low} to {high}, not {value!r}")
        return n
    return parse


def _text(name: str, value: Any) -> str:
    return str(value)


def _path(name: str, value: Any) -> Path:
    return Path(value)


def _paths(name: str, value: Any) -> tuple[Path, ...]:
    return tuple(Path(p) for p in ([value] if isinstance(value, str) else value))


def _whole(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a whole number, not {value!r}") from None


def setting(default: Any, *, env: str = "", toml: str = "", parse: Callable[[str, Any], Any] = _text,
            help: str = "", env_list: bool = False) -> Any:
    """Declare a setting: a `Settings` field with its default and how it is read.

    `env` is its environment variable and `toml` its kb.toml key ("" when it has none); `parse(name, value)`
    turns a raw value into the field's type (raising ConfigError naming `name`); with `env_list` the
    environment value is a list separated by the OS path separator.
    """
    meta = {"env": env, "toml": toml, "parse": parse, "help": help, "env_list": env_list}
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything configurable; see README 'Configuration'."""

    corpus_dirs: tuple[Path, ...] = setting(
        (Path("corpus"),), env="KB_CORPUS", toml="corpus", parse=_paths, env_list=True,
        help="corpus folders, separated by the OS path separator (':' here)")
    index_dir: Path = setting(Path("index"), env="KB_INDEX", toml="index", parse=_path, help="index folder")
    model: str = setting(
        "e5-small-q4", env="KB_MODEL", toml="model",
        help="encoder: 'e5-small-q4' (bundled multilingual-e5-small), 'use-multilingual-v3' (bundled USE) "
             "or a sentence-transformers model name/folder")
    dense: bool = setting(True, env="KB_DENSE", toml="dense", parse=_parse_bool,
                          help="'0' to build and search without the dense channel")
    admin_token: str = setting("", env="KB_ADMIN_TOKEN", help="enables the admin pages and is required to use them")
    host: str = setting("127.0.0.1", toml="host", help="address `kb serve` listens on")
    port: int = setting(5000, toml="port", parse=_whole, help="port `kb serve` listens on")
    trust_proxy: int = setting(  # reverse proxies in front whose X-Forwarded-* headers are believed
        0, env="KB_TRUST_PROXY", toml="trust_proxy", parse=_parse_proxies,
        help="number of reverse proxies in front of `kb serve` whose X-Forwarded-For/-Proto/-Host to believe")
    backend: str = setting(
        "embedded", env="KB_BACKEND", toml="backend", parse=_parse_backend,
        help="where channel scores are computed: 'embedded' (the index folder) or 'milvus'")
    milvus_uri: str = setting(
        "", env="KB_MILVUS_URI", toml="milvus_uri",
        help="milvus backend: a milvus-lite file path (*.db) or a server URL such as http://host:19530")
    milvus_token: str = setting(
        "", env="KB_MILVUS_TOKEN",
        help="milvus backend: the token ('user:password' or an API key) when the server needs one")
    milvus_lexical_candidates: int = setting(
        MILVUS_MAX_TOPK, env="KB_MILVUS_LEXICAL_CANDIDATES", toml="milvus_lexical_candidates",
        parse=_within(1, MILVUS_MAX_TOPK, "rows"),
        help="milvus backend: rows Milvus returns per lexical channel; a row past them scores 0 in that channel")
    milvus_replicas: int = setting(
        1, env="KB_MILVUS_REPLICAS", toml="milvus_replicas", parse=_within(1, MILVUS_MAX_REPLICAS, "replicas"),
        help="milvus backend: in-memory replicas of each build's collection (load_collection replica_number)")
    extra: dict = field(default_factory=dict)

    def with_overrides(self, **kwargs) -> "Settings":
        """Return a copy with the given non-None values replaced (CLI flags)."""
        clean = {k: v for k, v in kwargs.items() if v is not None and v != ()}
        if "corpus_dirs" in clean:
            clean["corpus_dirs"] = tuple(Path(p) for p in clean["corpus_dirs"])
        if "index_dir" in clean:
            clean["index_dir"] = Path(clean["index_dir"])
        return replace(self, **clean)


def declared_settings() -> list[Field]:
    """Return the `Settings` fields declared with `setting()`, in order."""
    return [f for f in fields(Settings) if "parse" in f.metadata]


CONFIG_ENV = "KB_CONFIG"
# every environment variable read, with its help (README 'Configuration' documents each)
ENV_VARS = {f.metadata["env"]: f.metadata["help"] for f in declared_settings() if f.metadata["env"]}
ENV_VARS[CONFIG_ENV] = "path of a kb.toml config file (default ./kb.toml when present)"


def check_admin_token(token: str) -> None:
    """Raise ConfigError when an admin token is set but too short to resist guessing."""
    if token and len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(short_token_message(token))


def load_settings(environ: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Return settings from defaults, the config file and the environment."""
    env = dict(os.environ if environ is None else environ)
    cwd = Path(cwd or Path.cwd())
    values: dict = {}
    cfg_path = Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else cwd / "kb.toml"
    if env.get(CONFIG_ENV) and not cfg_path.is_file():
        raise ConfigError(f"{CONFIG_ENV} points to {cfg_path}, which does not exist")
    section: dict = {}
    if cfg_path.is_file():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_path}: not valid TOML ({exc})") from exc
        section = data.get("kb", data)
    for f in declared_settings():
        key, var, parse = f.metadata["toml"], f.metadata["env"], f.metadata["parse"]
        if key and key in section:
            values[f.name] = parse(key, section[key])
        if var and env.get(var):
            raw = env[var]
            values[f.name] = parse(var, [p for p in raw.split(os.pathsep) if p] if f.metadata["env_list"] else raw)
    return Settings(**values)
