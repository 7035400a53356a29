"""Where the tests find the real services (Kafka, Kafka Connect, Redis) that ``make test`` starts.

``make test`` starts them with the repository's own scripts on test ports and exports:

* ``MARKETPULSE_TEST_KAFKA_BOOTSTRAP`` (default ``127.0.0.1:19092``)
* ``MARKETPULSE_TEST_CONNECT_URL``    (default ``http://127.0.0.1:18083``)
* ``MARKETPULSE_TEST_REDIS_URL``      (default ``redis://127.0.0.1:16379/0``)

Without a reachable service a test that needs it is skipped with the reason — except under ``CI=true``, where
the service must be there and its absence fails the test.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

KAFKA_BOOTSTRAP = os.environ.get("MARKETPULSE_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
CONNECT_URL = os.environ.get("MARKETPULSE_TEST_CONNECT_URL", "http://127.0.0.1:18083")
REDIS_URL = os.environ.get("MARKETPULSE_TEST_REDIS_URL", "redis://127.0.0.1:16379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (or, under CI=true, fail) when the service is not listening."""
    if _reachable(host, port):
        return
    message = (
        f"{name} is not reachable at {host}:{port}; start it with `make services-up` "
        f"(or `marketpulse services up {name.lower()}`)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires the real service: {message}")
    pytest.skip(message)


def require_kafka() -> str:
    host, _, port = KAFKA_BOOTSTRAP.split(",")[0].rpartition(":")
    require("Kafka", host, int(port))
    return KAFKA_BOOTSTRAP


def require_connect() -> str:
    url = urlparse(CONNECT_URL)
    require("Connect", url.hostname or "127.0.0.1", url.port or 8083)
    return CONNECT_URL


def require_redis() -> str:
    url = urlparse(REDIS_URL)
    require("Redis", url.hostname or "127.0.0.1", url.port or 6379)
    return REDIS_URL


def restart_kafka(during: Callable[[], None] | None = None) -> None:
    """Stop the test broker with the repository's own service manager, run ``during`` while it is down, start it
    again and wait until it answers. Needs the broker to have been started by ``scripts/services/test-env.sh``
    (its run dir is in ``MARKETPULSE_TEST_SERVICES_RUN_DIR``); otherwise skip (fail under CI=true)."""
    from marketpulse.config import load_settings
    from marketpulse.services import KafkaService

    run_dir = os.environ.get("MARKETPULSE_TEST_SERVICES_RUN_DIR")
    if not run_dir:
        message = (
            "the test broker was not started by scripts/services/test-env.sh (no MARKETPULSE_TEST_SERVICES_RUN_DIR)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = int(KAFKA_BOOTSTRAP.split(",")[0].rpartition(":")[2])
    controller = int(os.environ.get("MARKETPULSE_TEST_KAFKA_CONTROLLER_PORT", str(port + 1)))
    settings = load_settings().model_copy(deep=True)
    services = settings.services.model_copy(
        update={
            "run_dir": Path(run_dir),
            "kafka": settings.services.kafka.model_copy(update={"port": port, "controller_port": controller}),
        }
    )
    kafka = KafkaService(settings.model_copy(update={"services": services}))
    kafka.down()
    try:
        if during is not None:
            during()
    finally:
        kafka.up()
