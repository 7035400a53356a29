"""Redis online store on redis-py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RedisOnlineStoreConfig(BaseModel):
    """``online_store.type: redis`` — latest values in Redis, with TTL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["redis"] = "redis"
    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL (password in the URL)")
    ttl_s: float = Field(86_400.0, description="default time-to-live of an entry (<= 0: never expires)")
    key_prefix: str = Field("mp", description="prefix of every key, so several deployments can share a server")
    socket_timeout_s: float = Field(5.0, gt=0)
