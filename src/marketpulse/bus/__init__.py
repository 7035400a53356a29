"""The bus seam and its backends, chosen by ``bus.type`` (see :mod:`marketpulse.bus.base`)."""

from __future__ import annotations

from typing import Any

from marketpulse.bus.base import Bus, Consumer, Message, partition_for

__all__ = ["Bus", "Consumer", "Message", "build_bus", "partition_for"]


def build_bus(config: Any) -> Bus:
    """The bus for a ``bus`` config section (``type`` picks the backend module)."""
    if config.type == "memory":
        from marketpulse.bus.memory import MemoryBus

        return MemoryBus(config)
    if config.type == "kafka":
        from marketpulse.bus.kafka import KafkaBus

        return KafkaBus(config)
    raise ValueError(f"unknown bus type {config.type!r}")  # unreachable: the config union refuses it first
