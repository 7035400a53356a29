"""API keys hashed at rest, token buckets, the production check and the time parameters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from marketpulse.api.auth import (
    ApiSecurityError,
    KeyRing,
    RateLimiter,
    check_production,
    create_key,
    issue_dev_key,
    read_keys,
    retry_after_header,
    revoke_key,
)
from marketpulse.api.config import ApiConfig
from marketpulse.api.deps import parse_time
from marketpulse.api.errors import ApiError


def test_keys_are_stored_hashed_and_verified(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = create_key(path, "dash", rate_per_s=5, burst=7)
    text = path.read_text()
    assert key not in text and key.split("_", 2)[2] not in text  # the secret may itself hold "_"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    [record] = read_keys(path)
    assert (record.name, record.rate_per_s, record.burst, record.dev) == ("dash", 5, 7, False)
    ring = KeyRing(path)
    assert ring.verify(key) == record
    assert ring.verify(key[:-1] + ("x" if key[-1] != "x" else "y")) is None
    assert ring.verify("mpk_" + record.id + "_guess") is None and ring.verify("") is None


def test_a_running_ring_sees_new_and_revoked_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ring = KeyRing(path, reload_s=0.0)
    key = create_key(path, "late")
    assert ring.verify(key) is not None
    assert revoke_key(path, key.split("_")[1]) and not revoke_key(path, "nope")
    assert ring.verify(key) is None


def test_dev_key_replaces_the_previous_dev_key_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kept = create_key(path, "prod")
    first, second = issue_dev_key(path), issue_dev_key(path)
    ring = KeyRing(path)
    assert ring.verify(first) is None and ring.verify(second) is not None and ring.verify(kept) is not None
    assert [r.dev for r in read_keys(path)] == [False, True]


def test_bootstrap_key_and_broken_file(tmp_path: Path) -> None:
    ring = KeyRing(None, bootstrap="a-long-enough-bootstrap-secret")
    assert ring.verify("a-long-enough-bootstrap-secret") is not None and ring.verify("other") is None
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({"nope": 1}))
    with pytest.raises(Exception, match="not a key file"):
        KeyRing(bad)


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("k", rate=2.0, burst=3) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("k", rate=2.0, burst=3)
    assert wait == pytest.approx(0.5) and retry_after_header(wait) == "1"
    now[0] = 0.5
    assert limiter.take("k", rate=2.0, burst=3) == 0.0
    assert limiter.take("other", rate=2.0, burst=3) == 0.0  # buckets are per key


def test_production_refuses_unsafe_settings(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    check_production(ApiConfig(production=False), KeyRing(path))  # development: anything goes
    with pytest.raises(ApiSecurityError, match="no API key"):
        check_production(ApiConfig(production=True), KeyRing(path))
    issue_dev_key(path)
    with pytest.raises(ApiSecurityError, match="development key"):
        check_production(ApiConfig(production=True), KeyRing(path))
    for secret in ("", "changethis", "short"):
        config = ApiConfig(production=True, bootstrap_key=secret)  # type: ignore[arg-type]
        with pytest.raises(ApiSecurityError, match="placeholder"):
            check_production(config, KeyRing(None, secret))
    with pytest.raises(ApiSecurityError, match="'\\*'"):
        check_production(ApiConfig(production=True, cors_origins=["*"]), KeyRing(None, "x" * 32))
    good = tmp_path / "good.json"
    create_key(good, "prod")
    check_production(ApiConfig(production=True), KeyRing(good))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-05-01T13:30:00Z", datetime(2014, 5, 1, 13, 30, tzinfo=UTC)),
        ("2014-05-01t15:30:00.123456789+02:00", datetime(2014, 5, 1, 13, 30, 0, 123456, tzinfo=UTC)),
        ("2014-05-01", datetime(2014, 5, 1, tzinfo=UTC)),
        ("1398951000000", datetime(2014, 5, 1, 13, 30, tzinfo=UTC)),
        ("0001-01-01T00:00:00+05:00", datetime.min.replace(tzinfo=UTC)),
    ],
)
def test_time_parameters(text: str, expected: datetime) -> None:
    assert parse_time(text, "start") == expected


@pytest.mark.parametrize("text", ["", "yesterday", "-5", "2014-05-01T13:30:00", "2014-13-01", "123456789012345"])
def test_bad_time_parameters_are_422(text: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_time(text, "start")
    assert e.value.status == 422 and e.value.code == "validation_error" and "start" in e.value.message


def test_create_app_refuses_to_start_unsafe_in_production(tmp_path: Path) -> None:
    from marketpulse.api import ApiContext, create_app
    from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore

    issue_dev_key(tmp_path / "api_keys.json")
    context = ApiContext(MemoryOnlineStore(), MemoryHistoryStore(), None, ApiConfig(production=True), data_dir=tmp_path)
    with pytest.raises(ApiSecurityError, match="development key"):
        create_app(context)
