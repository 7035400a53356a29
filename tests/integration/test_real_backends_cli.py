"""A config switch only: the same ``marketpulse replay`` on Kafka and Redis, no code change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketpulse.bus.kafka import KafkaBus, KafkaBusConfig
from marketpulse.store.redis import RedisOnlineStore, RedisOnlineStoreConfig
from marketpulse.store.sqlite import SqliteHistoryStore
from realservices import require_kafka, require_redis

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.integration
def test_replay_on_kafka_and_redis_by_environment_only(tmp_path: Path) -> None:
    bootstrap, redis_url = require_kafka(), require_redis()
    prefix = f"switch-{os.getpid()}"
    bus = KafkaBus(KafkaBusConfig(bootstrap_servers=bootstrap))
    before = sum(bus.end_offsets("market.ticks").values())
    env = {
        **os.environ,
        "MARKETPULSE__BUS__TYPE": "kafka",
        "MARKETPULSE__BUS__BOOTSTRAP_SERVERS": bootstrap,
        "MARKETPULSE__ONLINE_STORE__TYPE": "redis",
        "MARKETPULSE__ONLINE_STORE__URL": redis_url,
        "MARKETPULSE__ONLINE_STORE__KEY_PREFIX": prefix,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "marketpulse.cli",
            "--data-dir",
            str(tmp_path),
            "replay",
            "--source",
            str(FIXTURES / "ticks_good.csv"),
            "--kind",
            "ticks",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["read"] == report["accepted"] + report["deadlettered"] > 0
    after = sum(bus.end_offsets("market.ticks").values())
    bus.close()
    assert after - before == report["published"] > 0  # one columnar batch per symbol, on the real broker
    with SqliteHistoryStore(data_dir=tmp_path) as history:
        assert history.count("ticks") == report["accepted"]
        symbols = history.symbols("ticks")
    redis = RedisOnlineStore(RedisOnlineStoreConfig(url=redis_url, key_prefix=prefix))
    try:
        assert redis.symbols("ticks") == symbols
        latest = redis.get("ticks", symbols[0])
        assert latest is not None and latest["price"] > 0
    finally:
        for sym in symbols:
            redis.delete("ticks", sym)
        redis.close()
