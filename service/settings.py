"""Configuration from ``YARDSTICK_*`` environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: The project of a key that names none, of every caller when no keys are set, and of rows
#: stored before projects existed.
DEFAULT_PROJECT = "default"
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ApiKey(BaseModel):
    """One bearer key and what it may do: ``key``, ``key:project`` or ``key:project:read``."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(repr=False, min_length=1)
    project: str = DEFAULT_PROJECT
    can_write: bool = True

    @classmethod
    def parse(cls, entry: str, position: int) -> ApiKey:
        """One entry of YARDSTICK_API_KEYS; errors say which entry without echoing the key."""
        parts = entry.split(":")
        where = f"YARDSTICK_API_KEYS entry {position + 1}"
        if len(parts) > 3 or not parts[0]:
            raise ValueError(f"{where}: expected key, key:project or key:project:read (keys have no ':')")
        project = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_PROJECT
        if not PROJECT_NAME.fullmatch(project):
            raise ValueError(
                f"{where}: project {project!r} must be 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        mode = parts[2] if len(parts) == 3 else "write"
        if mode not in ("read", "write"):
            raise ValueError(f"{where}: the access after the project is 'read' or 'write', not {mode!r}")
        return cls(key=parts[0], project=project, can_write=mode == "write")


def _parse_api_keys(value: object) -> object:
    """Commas or newlines separate entries (``YARDSTICK_API_KEYS="$(cat keys.txt)"`` works)."""
    if isinstance(value, str):
        value = [part.strip() for part in re.split(r"[,\n]", value) if part.strip()]
    if not isinstance(value, list | tuple):
        return value
    keys = [ApiKey.parse(v.strip(), i) if isinstance(v, str) else v for i, v in enumerate(value)]
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if isinstance(key, ApiKey):
            if key.key in seen:
                raise ValueError(f"YARDSTICK_API_KEYS entry {i + 1} repeats an earlier key")
            seen.add(key.key)
    return keys


class Settings(BaseSettings):
    """Every knob of the service. Defaults run a laptop-sized embedded deployment."""

    # hide_input_in_errors: a bad YARDSTICK_API_KEYS entry must not print the keys.
    model_config = SettingsConfigDict(env_prefix="YARDSTICK_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(default=Path("./data"), description="Batch Parquet files and the SQLite database.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/yardstick.db."
    )
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys, `key[:project[:read]]`, comma- or newline-separated; a key without a "
        "project belongs to `default`, `:read` makes it read-only. Empty means no auth (loopback only) "
        "and every caller is project `default`.",
    )
    outbound_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Non-public hosts/CIDRs outbound calls may reach."
    )
    dask_address: str | None = Field(
        default=None,
        description="Reserved for a Dask scheduler; not used yet (serve and worker warn when it is set).",
    )

    workers: int = Field(default=2, ge=0, description="Embedded worker processes started by `serve`.")
    job_threads: int = Field(
        default=2,
        ge=1,
        description="Threads one job may use for independent parts (the baseline panel's sides); "
        "1 computes everything in the job's own thread.",
    )
    max_body_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Larger request bodies get 413.")
    lease_seconds: float = Field(
        default=30.0, gt=0, description="A job not heartbeated for this long is retried."
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    poll_seconds: float = Field(default=0.1, gt=0, description="How often an idle worker looks for work.")
    max_attempts: int = Field(default=3, ge=1, description="A job whose worker died this many times fails.")
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=1000, ge=1)
    max_rows: int = Field(
        default=50_000_000,
        ge=1,
        description="Rows per batch; a batch with more is refused (413) from its metadata before decoding.",
    )
    max_columns: int = Field(default=1000, ge=1, description="Columns per batch; more are refused (413).")
    idempotency_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long an Idempotency-Key of POST /v1/batches or /v1/evaluations is remembered.",
    )
    max_slices_per_group: int = Field(
        default=1000,
        ge=1,
        description="Slices reported per column or cross; the worst are kept and the result says how many "
        "were left out.",
    )
    max_slices_per_result: int = Field(
        default=5000, ge=1, description="Slices reported in one result, over all columns and crosses."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="Log lines as text for people, or `json` (one object per line) for log shippers.",
    )

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _api_keys(cls, value: object) -> object:
        return _parse_api_keys(value)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'yardstick.db'}"

    @property
    def batches_dir(self) -> Path:
        return self.data_dir / "batches"


class InvalidSettings(ValueError):
    """An environment variable the service cannot start with; the message names each one."""


def load_settings(**overrides: object) -> Settings:
    """:class:`Settings` from the environment, with one line per bad variable instead of a
    validation traceback (``serve`` and ``worker`` print it and exit 2)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        env_prefix = Settings.model_config.get("env_prefix", "")
        problems = [
            f"{env_prefix}{str(error['loc'][0]).upper() if error['loc'] else ''}: {error['msg']}"
            for error in exc.errors()
        ]
        raise InvalidSettings("; ".join(problems)) from None


def settings_warnings(settings: Settings) -> list[str]:
    """Settings that are accepted but have no effect, said plainly at start-up."""
    warnings = []
    if settings.dask_address:
        warnings.append(
            f"YARDSTICK_DASK_ADDRESS={settings.dask_address} is set, but this version does not use Dask: "
            "jobs compute in their worker processes (YARDSTICK_WORKERS) with YARDSTICK_JOB_THREADS "
            "threads each; scale out by running more `yardstick worker` processes."
        )
    return warnings
