"""Settings: one table drives resolution, validation, `--help` text and the docs.

Precedence, highest first: command-line flag, environment variable `MODELDEPOT_<NAME>`,
`config.toml` in the data dir, default. The supervisor resolves once and hands the result to its
children as environment variables, so a child never re-reads a config file that may have changed.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import BadRequest

# Set by the supervisor in its children's environment (with every resolved setting).
SUPERVISOR_PID_ENV = "MODELDEPOT_SUPERVISOR_PID"

ENV_PREFIX = "MODELDEPOT_"
AUTH_MODES = ("writes", "all", "none")


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_size(value: str) -> int:
    """Bytes, with an optional K/M/G suffix (powers of 1024): `2G`, `512M`, `1048576`."""
    text = value.strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    number = text[:-1] if factor != 1 else text
    size = int(float(number) * factor)
    if size <= 0:
        raise ValueError("must be positive")
    return size


def _parse_port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be between 0 and 65535")
    return port


def _parse_auth(value: str) -> str:
    if value not in AUTH_MODES:
        raise ValueError(f"must be one of {', '.join(AUTH_MODES)}")
    return value


def _parse_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _parse_at_least_one(value: str) -> int:
    size = int(value)
    if size < 1:
        raise ValueError("must be at least 1")
    return size


def _parse_keep_versions(value: str) -> int | None:
    """How many versions of a model to keep: a count, or `all` (never remove any)."""
    if value.strip().lower() == "all":
        return None
    return _parse_at_least_one(value)


def _parse_days(value: str) -> float | None:
    """Days, or `forever`."""
    if value.strip().lower() == "forever":
        return None
    days = float(value)
    if not days > 0:
        raise ValueError("must be a positive number of days, or forever")
    return days


def _parse_free_disk(value: str) -> str:
    """Free space to keep: bytes with a K/M/G suffix (`2G`, `0` to switch the guard off), or a
    share of the volume (`5%`). Kept as text; app/diskspace.py turns it into bytes per volume."""
    text = value.strip()
    if text.endswith("%"):
        share = float(text[:-1])
        if not 0 <= share < 100:
            raise ValueError("a percentage must be from 0 up to (not including) 100")
    elif text != "0":
        parse_size(text)
    return text


# Cores minus one, so the registry itself keeps a core to answer requests while jobs train.
DEFAULT_POOL_SIZE = max(1, (os.cpu_count() or 2) - 1)


def _default_home() -> str:
    import platformdirs

    return platformdirs.user_data_dir("modeldepot", appauthor=False)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("home", None, "Data dir: database, model files, token, logs.", str),
    Setting("host", "127.0.0.1", "Address both servers bind to.", str),
    Setting("allow_remote", False, "Permit a non-loopback host; forces auth=all.", _parse_bool),
    Setting("registry_port", 8720, "Port of the registry (Flask).", _parse_port),
    Setting("inference_port", 8721, "Port of the inference server (FastAPI).", _parse_port),
    Setting("token", None, "API token; default: the token file in the data dir.", str),
    Setting("auth", "writes", "Which requests need the token: writes, all, none.", _parse_auth),
    Setting("allowed_hosts", (), "Extra Host header names to accept (comma list).", _parse_list),
    Setting("max_upload_bytes", 2 << 30, "Largest accepted upload (e.g. 2G, 500M).", parse_size),
    Setting("registry_threads", 8, "Worker threads of the registry's WSGI server.", int),
    Setting("log_level", "info", "debug, info, warning or error.", str),
    Setting(
        "batch_window_ms", 1.0, "How long inference waits to stack concurrent requests.", float
    ),
    Setting("max_batch_size", 64, "Most requests stacked into one predict call.", int),
    Setting("max_batch_rows", 10_000, "Most rows one prediction request may carry.", int),
    Setting(
        "max_request_bytes", 32 << 20, "Largest prediction request body (e.g. 32M).", parse_size
    ),
    Setting("cache_memory_mb", 2048, "Memory budget of loaded models; least used go first.", int),
    Setting(
        "traffic_history", True,
        "Keep per-minute traffic of each model in the inference server's memory for the "
        "dashboard (app/inference/traffic.py; false: none).", _parse_bool,
    ),
    Setting(
        "inference_workers",
        1,
        "Inference processes sharing the inference port (SO_REUSEPORT, Linux), each with its own "
        "model cache; more answer more requests per second on more cores.",
        _parse_at_least_one,
    ),
    Setting("poll_interval_ms", 200, "How often inference checks the store for changes.", int),
    Setting(
        "request_timeout_s",
        30,
        "Seconds a client of the inference server has to send a whole request (from connecting, "
        "or from a later request's first byte); idle or slower connections are closed.",
        _parse_at_least_one,
    ),
    Setting(
        "twins",
        True,
        "Build verified ONNX twins of scikit-learn models and serve through "
        "them (false: scikit-learn only).",
        _parse_bool,
    ),
    Setting(
        "pool_size",
        DEFAULT_POOL_SIZE,
        "Training processes run at once; more jobs queue (default: cores minus one, at least one).",
        _parse_at_least_one,
    ),
    Setting(
        "max_dataset_bytes", 1 << 30, "Largest accepted dataset CSV (e.g. 1G, 200M).", parse_size
    ),
    Setting(
        "sandbox_memory_mb", 4096,
        "Address space of the process that opens an uploaded model file (docs/security.md).", int,
    ),
    Setting("sandbox_seconds", 120, "Longest time an uploaded model file may take to check.", int),
    Setting(
        "max_uploads_in_progress",
        4,
        "Uploads (models and datasets) the registry works on at once; one more is refused with "
        "503 and Retry-After, and the command line sends it again.",
        _parse_at_least_one,
    ),
    Setting(
        "require_signed_imports",
        False,
        "Refuse model bundles not signed by a trusted publisher key (default: import them with "
        "a warning on each version).",
        _parse_bool,
    ),
    Setting(
        "keep_versions",
        None,
        "Versions kept per model (or all); older ones go after each new version, except those an "
        "alias names, a running job uses or that is served. A model's tag keep_versions "
        "overrides it.",
        _parse_keep_versions,
    ),
    Setting(
        "keep_datasets_days",
        None,
        "Days a dataset is kept (or forever); older ones go unless a running job reads them.",
        _parse_days,
    ),
    Setting(
        "min_free_disk",
        None,
        "Free disk space writes must leave, e.g. 2G or 5% (default: 1G or 5% of the volume, "
        "whichever is smaller; 0: no guard). Refused writes answer 507.",
        _parse_free_disk,
    ),
)
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def _default(name: str) -> Any:
    """A Settings field's default: the table's, so each default is written once."""
    return SETTINGS_BY_NAME[name].default


@dataclass(frozen=True)
class Paths:
    """Where everything lives; all derived from the data dir."""

    home: Path

    @property
    def database(self) -> Path:
        return self.home / "modeldepot.db"

    @property
    def blobs(self) -> Path:
        return self.home / "blobs"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    @property
    def server_file(self) -> Path:
        return self.home / "server.json"

    @property
    def logs(self) -> Path:
        return self.home / "logs"


@dataclass(frozen=True)
class Settings:
    home: Path
    host: str = _default("host")
    allow_remote: bool = _default("allow_remote")
    registry_port: int = _default("registry_port")
    inference_port: int = _default("inference_port")
    token: str | None = _default("token")
    auth: str = _default("auth")
    allowed_hosts: tuple[str, ...] = _default("allowed_hosts")
    max_upload_bytes: int = _default("max_upload_bytes")
    registry_threads: int = _default("registry_threads")
    log_level: str = _default("log_level")
    batch_window_ms: float = _default("batch_window_ms")
    max_batch_size: int = _default("max_batch_size")
    max_batch_rows: int = _default("max_batch_rows")
    max_request_bytes: int = _default("max_request_bytes")
    cache_memory_mb: int = _default("cache_memory_mb")
    inference_workers: int = _default("inference_workers")
    poll_interval_ms: int = _default("poll_interval_ms")
    traffic_history: bool = _default("traffic_history")
    request_timeout_s: int = _default("request_timeout_s")
    twins: bool = _default("twins")
    pool_size: int = _default("pool_size")
    max_dataset_bytes: int = _default("max_dataset_bytes")
    sandbox_memory_mb: int = _default("sandbox_memory_mb")
    sandbox_seconds: int = _default("sandbox_seconds")
    max_uploads_in_progress: int = _default("max_uploads_in_progress")
    require_signed_imports: bool = _default("require_signed_imports")
    keep_versions: int | None = _default("keep_versions")
    keep_datasets_days: float | None = _default("keep_datasets_days")
    min_free_disk: str | None = _default("min_free_disk")
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def paths(self) -> Paths:
        return Paths(self.home)

    @property
    def effective_auth(self) -> str:
        """Binding beyond loopback forces `all`: a network peer must never read unauthenticated."""
        return self.auth if is_loopback_host(self.host) else "all"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The resolved settings as environment variables, for child processes."""
        env: dict[str, str] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[setting.env_var] = str(value)
        return env


def is_loopback_host(host: str) -> bool:
    """Whether a bind host is loopback: the same answer the Host header check gives."""
    from app.net import host_of, is_loopback

    return is_loopback(host_of(host))


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadRequest(f"The config file {path} could not be read: {exc}.") from exc
    unknown = sorted(set(data) - set(SETTINGS_BY_NAME) - {"home"})
    if unknown:
        raise BadRequest(f"Unknown setting(s) in {path}: {', '.join(unknown)}.")
    return data


def _convert(setting: Setting, raw: Any, origin: str) -> Any:
    if isinstance(raw, list):
        raw = ",".join(str(x) for x in raw)
    try:
        return setting.parse(str(raw) if not isinstance(raw, bool) else str(raw).lower())
    except ValueError as exc:
        raise BadRequest(f"Setting {setting.name} from {origin} is invalid: {exc}.") from exc


def resolve(
    flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting: flag > environment > config.toml > default."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    home_setting = SETTINGS_BY_NAME["home"]
    if "home" in flags:
        home, sources["home"] = str(flags["home"]), "flag"
    elif home_setting.env_var in environ:
        home, sources["home"] = environ[home_setting.env_var], "env"
    else:
        home, sources["home"] = _default_home(), "default"
    home_path = Path(home).expanduser().resolve()
    # A supervisor's child gets every setting in its environment: a config.toml edited (or
    # broken) since would only turn its next restart into a crash loop.
    started_by_supervisor = SUPERVISOR_PID_ENV in environ
    file_values = {} if started_by_supervisor else _read_config_file(Paths(home_path).config_file)

    for setting in SETTINGS:
        if setting.name == "home":
            continue
        if setting.name in flags:
            raw, origin = flags[setting.name], "flag"
            values[setting.name] = (
                raw if not isinstance(raw, str) else _convert(setting, raw, origin)
            )
        elif setting.env_var in environ:
            origin = "env"
            values[setting.name] = _convert(setting, environ[setting.env_var], setting.env_var)
        elif setting.name in file_values:
            origin = "config.toml"
            values[setting.name] = _convert(setting, file_values[setting.name], "config.toml")
        else:
            continue
        sources[setting.name] = origin

    settings = Settings(home=home_path, sources=sources, **values)
    if not is_loopback_host(settings.host) and not settings.allow_remote:
        raise BadRequest(
            f"Refusing to bind to {settings.host}: it is not a loopback address. "
            "Set allow_remote (flag --allow-remote or MODELDEPOT_ALLOW_REMOTE=true) to serve the "
            "network; that forces auth=all."
        )
    return settings
