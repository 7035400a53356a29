"""One typed, frozen configuration for the whole system.

Layers, lowest priority first:

1. the defaults in ``config/marketpulse.yaml`` (identical to the model defaults below; a test keeps them so);
2. a user file passed with ``--config FILE`` (YAML, same shape);
3. environment variables ``MARKETPULSE__SECTION__KEY`` (e.g. ``MARKETPULSE__BUS__PARTITIONS=8``);
4. explicit overrides given by the caller (the CLI's ``--data-dir``; env ``MARKETPULSE_DATA_DIR`` too).

Backends are chosen by ``type`` (Feast style): each backend module defines its own ``<Name>Config`` with a
``type: Literal[...]`` next to its class, and the unions below list them. An unknown key or a bad value fails at
start with :class:`~marketpulse.errors.ConfigError` naming the key and the allowed values.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from marketpulse.api.config import ApiConfig
from marketpulse.bus.kafka import KafkaBusConfig
from marketpulse.bus.memory import MemoryBusConfig
from marketpulse.clock import parse_speed
from marketpulse.config_errors import format_validation_error
from marketpulse.errors import ConfigError
from marketpulse.fusion.online import OnlineFusionConfig
from marketpulse.monitoring.alerts import AlertsConfig
from marketpulse.store.memory import MemoryOnlineStoreConfig
from marketpulse.store.redis import RedisOnlineStoreConfig
from marketpulse.store.sqlite import SqliteHistoryStoreConfig


def _default_type(default: str) -> BeforeValidator:
    """A backend section given without ``type`` (e.g. only ``MARKETPULSE__BUS__PARTITIONS``) gets the default."""

    def fill(value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {**value, "type": default}
        return value

    return BeforeValidator(fill)


BusConfig = Annotated[MemoryBusConfig | KafkaBusConfig, Field(discriminator="type"), _default_type("memory")]
OnlineStoreConfig = Annotated[
    MemoryOnlineStoreConfig | RedisOnlineStoreConfig, Field(discriminator="type"), _default_type("memory")
]
HistoryStoreConfig = Annotated[SqliteHistoryStoreConfig, Field(discriminator="type"), _default_type("sqlite")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Section):
    """Which engine runs the stage functions. ``local``: in-process micro-batches."""

    type: Literal["local"] = "local"
    batch_rows: int = Field(65_536, gt=0, description="rows per micro-batch read from a source")


class SentimentConfig(_Section):
    """The engine's sentiment model. ``auto``: the calibrated lexicon + transformer ensemble when the ``ml`` extra
    is installed, the lexicon alone otherwise."""

    model: Literal["auto", "lexicon", "transformer", "transformer-fast", "ensemble"] = "auto"
    encoder_path: Path | None = Field(
        None, description="a local Hugging Face model folder for the transformer (default: the bundled MiniLM)"
    )
    precision: Literal["fp32", "bf16", "int8", "auto"] = Field(
        "auto", description="the transformer's precision; auto = bf16 where the CPU has it natively, else fp32"
    )

    def options(self) -> dict[str, Any]:
        """The model options these settings give (transformer options; the lexicon takes none)."""
        if self.model == "lexicon":
            return {}
        return {"precision": self.precision, **({"encoder": self.encoder_path} if self.encoder_path else {})}


class PredictConfig(_Section):
    """Online price prediction in the engine (models from the registry under ``<data_dir>/models``)."""

    enabled: bool = Field(True, description="predict from each new feature vector when a compatible model exists")
    model: str | None = Field(None, description="registered model name to pin; null = the latest compatible one")
    reload_s: float = Field(2.0, ge=0.0, description="check the registry for a new or replaced model this often")
    bundled: bool = Field(
        True, description="with no compatible registered model, use the bundled demo model (SPY 1-minute bars)"
    )


class ValidationConfig(_Section):
    """Record checks applied by :mod:`marketpulse.ingest.validate` before anything enters the bus."""

    outlier_k: float = Field(12.0, gt=0, description="reject a log-return beyond k robust sigmas")
    outlier_min_history: int = Field(30, ge=2, description="returns seen per symbol before jumps are judged")
    stale_after_s: float | None = Field(
        None, gt=0, description="reject records this far behind the source's newest event time (None: off)"
    )
    market_hours: bool = Field(False, description="dead-letter market data outside the exchange's sessions")
    calendar: str = Field("XNYS", description="exchange_calendars code used by the market-hours filter")
    naive_timezone: str = Field("UTC", description="timezone assumed for timestamps that carry none")

    @field_validator("naive_timezone")
    @classmethod
    def _known_tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown timezone {value!r} (an IANA name such as UTC or America/New_York)") from e
        return value


SpeedConfig = Annotated[float | Literal["max"], BeforeValidator(parse_speed)]  # refuse 0, negatives, nan, inf


class ReplayConfig(_Section):
    """Defaults of ``marketpulse replay``."""

    speed: SpeedConfig = Field("max", description="N× real time, or max")


class RunConfig(_Section):
    """Defaults of ``marketpulse run`` (the embedded demo)."""

    speed: SpeedConfig = Field(1800.0, description="N× real time for the demo replay, or max")
    symbols: list[str] = Field(default_factory=list, description="restrict the demo to these symbols")
    max_gap_s: float = Field(
        0.05, gt=0, description="longest wall-clock wait between two demo events (quiet hours pass quickly)"
    )


class KafkaServiceConfig(_Section):
    """The single-node Kafka (KRaft) that ``marketpulse services up kafka`` starts."""

    version: str = Field("4.1.1", description="Apache Kafka release fetched from Maven Central")
    port: int = Field(9092, gt=0, lt=65536)
    controller_port: int = Field(9093, gt=0, lt=65536)
    heap_mb: int = Field(512, ge=128)


class ConnectServiceConfig(_Section):
    """The Kafka Connect standalone worker of ``marketpulse services up connect``."""

    port: int = Field(8083, gt=0, lt=65536, description="REST port")
    heap_mb: int = Field(256, ge=128)


class RedisServiceConfig(_Section):
    """The Redis server (Debian's redis-server) of ``marketpulse services up redis``."""

    port: int = Field(6379, gt=0, lt=65536)


class ServicesConfig(_Section):
    """Local services started without Docker, bound to 127.0.0.1, stopped by PID."""

    cache_dir: Path | None = Field(None, description="downloaded jars (default: ~/.cache/marketpulse)")
    run_dir: Path | None = Field(None, description="PID files, logs and data (default: <data_dir>/services)")
    kafka: KafkaServiceConfig = Field(default_factory=KafkaServiceConfig)
    connect: ConnectServiceConfig = Field(default_factory=ConnectServiceConfig)
    redis: RedisServiceConfig = Field(default_factory=RedisServiceConfig)


class Settings(BaseSettings):
    """The whole configuration. Frozen: build a new one to change anything."""

    model_config = SettingsConfigDict(
        env_prefix="MARKETPULSE__",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(Path("data"), description="where embedded stores and models live")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    bus: BusConfig = Field(default_factory=MemoryBusConfig)
    online_store: OnlineStoreConfig = Field(default_factory=MemoryOnlineStoreConfig)
    history_store: HistoryStoreConfig = Field(default_factory=SqliteHistoryStoreConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sentiment: SentimentConfig = Field(default_factory=SentimentConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    services: ServicesConfig = Field(default_factory=ServicesConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    fusion: OnlineFusionConfig = Field(default_factory=OnlineFusionConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlLayers(settings_cls))


_FILE_LAYERS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("_FILE_LAYERS", default=None)


class _YamlLayers(PydanticBaseSettingsSource):
    """The merged YAML files (defaults, then the user's ``--config``) prepared by :func:`load_settings`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_LAYERS.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_LAYERS.get() or {})


def default_config_path() -> Path | None:
    """``config/marketpulse.yaml`` of the source checkout, when running from one."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "config" / "marketpulse.yaml"
        if candidate.is_file():
            return candidate
    return None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    return data


BACKEND_SECTIONS = ("bus", "online_store", "history_store", "engine")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge; a backend section whose ``type`` changes is replaced, not merged (its keys differ)."""
    out = dict(base)
    for key, value in over.items():
        switches = key in BACKEND_SECTIONS and isinstance(value, dict) and isinstance(out.get(key), dict)
        if switches and "type" in value and value["type"] != out[key].get("type"):
            out[key] = value
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(config_file: Path | None = None, data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from every layer; raise :class:`ConfigError` with the key and allowed values."""
    layers: dict[str, Any] = {}
    default_path = default_config_path()
    if default_path is not None:
        layers = _read_yaml(default_path)
    if config_file is not None:
        layers = _merge(layers, _read_yaml(config_file))
    if data_dir is None and os.environ.get("MARKETPULSE_DATA_DIR"):
        data_dir = Path(os.environ["MARKETPULSE_DATA_DIR"])
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    unknown = sorted(
        name
        for name in os.environ
        if name.upper().startswith("MARKETPULSE__") and name.split("__")[1].lower() not in Settings.model_fields
    )
    if unknown:
        raise ConfigError(
            f"config error: environment {unknown[0]}: unknown section; allowed: {', '.join(Settings.model_fields)}"
        )
    for section in BACKEND_SECTIONS:  # an env var that switches a backend drops the file's keys of the old one
        env_type = next(
            (v for k, v in os.environ.items() if k.upper() == f"MARKETPULSE__{section.upper()}__TYPE"), None
        )
        if env_type is not None and isinstance(layers.get(section), dict) and layers[section].get("type") != env_type:
            layers[section] = {}
    token = _FILE_LAYERS.set(layers)
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, Settings)) from e
    finally:
        _FILE_LAYERS.reset(token)
