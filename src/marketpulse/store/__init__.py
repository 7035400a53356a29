"""The store seams and their backends, chosen by ``online_store.type`` / ``history_store.type``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketpulse.store.base import HistoryStore, OnlineStore

__all__ = ["HistoryStore", "OnlineStore", "build_history_store", "build_online_store"]


def build_online_store(config: Any) -> OnlineStore:
    """The online store for an ``online_store`` config section."""
    if config.type == "memory":
        from marketpulse.store.memory import MemoryOnlineStore

        return MemoryOnlineStore(config)
    if config.type == "redis":
        from marketpulse.store.redis import RedisOnlineStore

        return RedisOnlineStore(config)
    raise ValueError(f"unknown online store type {config.type!r}")  # unreachable: the config refuses it first


def build_history_store(config: Any, data_dir: Path) -> HistoryStore:
    """The history store for a ``history_store`` config section, under ``data_dir`` when it has a file."""
    if config.type == "sqlite":
        from marketpulse.store.sqlite import SqliteHistoryStore

        return SqliteHistoryStore(config, data_dir=data_dir)
    raise ValueError(f"unknown history store type {config.type!r}")  # unreachable: the config refuses it first
