"""Local services without Docker: Redis, Kafka (KRaft) and Kafka Connect, started and stopped by PID file.

``marketpulse services up|down|status [redis|kafka|connect]`` drives them (:mod:`marketpulse.services.cli`);
the tests and scripts use :func:`get_services`. See ``docs/services.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from marketpulse.config import Settings
from marketpulse.services.base import (
    PortInUseError,
    Progress,
    Service,
    ServiceError,
    ServiceStartError,
    ServiceStatus,
    ServiceStopError,
    ToolMissingError,
    Transition,
)
from marketpulse.services.kafka import ConnectError, ConnectService, KafkaService, add_connector, delete_connector
from marketpulse.services.redis import RedisService

#: name → class, in start order (``down`` goes in reverse: Connect before the Kafka it writes to)
SERVICES: dict[str, type[Service]] = {
    "redis": RedisService,
    "kafka": KafkaService,
    "connect": ConnectService,
}


def get_services(
    settings: Settings, names: Iterable[str] | None = None, progress: Progress | None = None
) -> list[Service]:
    """The services named (all when None), in start order; an unknown name → :class:`ServiceError`."""
    chosen = list(names) if names else list(SERVICES)
    unknown = [n for n in chosen if n not in SERVICES]
    if unknown:
        raise ServiceError(f"unknown service {unknown[0]!r}; allowed: {', '.join(SERVICES)}")
    return [SERVICES[n](settings, progress) for n in SERVICES if n in chosen]


__all__ = [
    "SERVICES",
    "ConnectError",
    "ConnectService",
    "KafkaService",
    "PortInUseError",
    "RedisService",
    "Service",
    "ServiceError",
    "ServiceStartError",
    "ServiceStatus",
    "ServiceStopError",
    "ToolMissingError",
    "Transition",
    "add_connector",
    "delete_connector",
    "get_services",
]
