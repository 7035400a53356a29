"""The ``api`` config section: where the serving API listens, who may call it and how fast.

Meant to be added to :class:`~marketpulse.config.Settings` as ``api: ApiConfig``; every key can then come from
``config/marketpulse.yaml``, a ``--config`` file or ``MARKETPULSE__API__<KEY>``. Nothing here reads the
environment by itself. :func:`~marketpulse.api.auth.check_production` refuses unsafe values when ``production``
is set (it is called by :func:`~marketpulse.api.app.create_app`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ApiConfig(BaseModel):
    """Serving API (REST + WebSocket) settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="interface to bind (the embedded run always binds 127.0.0.1)")
    port: int = Field(8000, ge=0, lt=65536, description="TCP port (0: any free port)")
    production: bool = Field(False, description="refuse development keys, placeholder secrets and '*' CORS")
    keys_file: Path | None = Field(None, description="hashed API keys (JSON); default <data_dir>/api_keys.json")
    bootstrap_key: SecretStr | None = Field(
        None, description="one extra API key accepted as is (e.g. from MARKETPULSE__API__BOOTSTRAP_KEY)"
    )
    rate_per_s: float = Field(50.0, gt=0, description="token-bucket refill per API key (requests per second)")
    burst: int = Field(100, gt=0, description="token-bucket size per API key")
    cors_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:8501", "http://127.0.0.1:8501"],
        description="origins allowed by CORS (the Streamlit dashboard by default)",
    )
    heartbeat_s: float = Field(15.0, gt=0, description="WebSocket heartbeat period")
    ws_queue: int = Field(1000, gt=0, description="messages queued per WebSocket client before dropping")
    ws_drop_limit: int = Field(
        5000, gt=0, description="consecutive dropped messages after which a slow client is disconnected"
    )
    ws_ring: int = Field(10_000, gt=0, description="recent messages kept for {'op': 'resume'}")
    ws_group: str = Field(
        "marketpulse-api", description="bus consumer group of the WebSocket hub (one per API replica on Kafka)"
    )


__all__ = ["ApiConfig"]
