"""API keys (hashed at rest), per-key token-bucket rate limits and the production safety check.

Keys look like ``mpk_<id>_<secret>``: ``id`` (8 hex digits) finds the record, the whole key is verified against
``sha256(salt || key)`` with a per-key random salt (:func:`hmac.compare_digest`). The JSON key file (mode 0600,
written atomically) never holds a key in clear::

    {"version": 1, "keys": [{"id": "1a2b3c4d", "name": "dev", "salt": "<hex>", "sha256": "<hex>",
                             "created": "2024-01-01T00:00:00+00:00", "dev": true, "rate_per_s": null, "burst": null}]}

A key is shown once, when made (:func:`create_key`, :func:`issue_dev_key`). :class:`KeyRing` re-reads the file
when it changes (checked at most every ``reload_s``), so keys added or revoked apply to a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from marketpulse.api.config import ApiConfig
from marketpulse.errors import ConfigError

KEYS_FILENAME = "api_keys.json"
_PREFIX = "mpk_"
PLACEHOLDERS = frozenset(
    {"", "changethis", "changeme", "change-me", "change_me", "secret", "placeholder", "password", "default", "dev"}
)
MIN_SECRET_LEN = 24


class ApiSecurityError(ConfigError):
    """The API configuration is unsafe for production (raised before the server starts)."""


@dataclass(frozen=True)
class KeyRecord:
    """One stored key: its hash and limits (``None``: the config's defaults)."""

    id: str
    name: str
    salt: str
    sha256: str
    created: str
    dev: bool = False
    rate_per_s: float | None = None
    burst: int | None = None

    def matches(self, key: str) -> bool:
        digest = hashlib.sha256(bytes.fromhex(self.salt) + key.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, self.sha256)


def keys_path(config: ApiConfig, data_dir: Path) -> Path:
    """The key file: ``config.keys_file`` or ``<data_dir>/api_keys.json``."""
    return config.keys_file.expanduser() if config.keys_file is not None else Path(data_dir) / KEYS_FILENAME


def _hash(key: str) -> tuple[str, str]:
    salt = secrets.token_bytes(16)
    return salt.hex(), hashlib.sha256(salt + key.encode("utf-8")).hexdigest()


def read_keys(path: Path) -> list[KeyRecord]:
    """The records of a key file (``[]`` when absent); :class:`ConfigError` when it is not a key file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [KeyRecord(**item) for item in data["keys"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"API key file {path} is unreadable or not a key file: {e}") from e


def _write_keys(path: Path, records: list[KeyRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"version": 1, "keys": [r.__dict__ for r in records]}, indent=2)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".api_keys.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_key(
    path: Path, name: str, *, dev: bool = False, rate_per_s: float | None = None, burst: int | None = None
) -> str:
    """Add a key to the file and return it in clear (the only time it is shown)."""
    records = read_keys(path)
    taken = {r.id for r in records}
    key_id = secrets.token_hex(4)
    while key_id in taken:
        key_id = secrets.token_hex(4)
    key = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    salt, digest = _hash(key)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    records.append(KeyRecord(key_id, name, salt, digest, created, dev, rate_per_s, burst))
    _write_keys(path, records)
    return key


def issue_dev_key(path: Path) -> str:
    """Replace every development key in the file by a new one and return it (for ``marketpulse run`` to print)."""
    _write_keys(path, [r for r in read_keys(path) if not r.dev])
    return create_key(path, "development", dev=True)


def revoke_key(path: Path, key_id: str) -> bool:
    """Remove the key with ``key_id``; False when there is none."""
    records = read_keys(path)
    kept = [r for r in records if r.id != key_id]
    if len(kept) == len(records):
        return False
    _write_keys(path, kept)
    return True


class KeyRing:
    """The keys a server accepts: the key file (reloaded when it changes) plus the optional bootstrap key."""

    def __init__(self, path: Path | None, bootstrap: str | None = None, reload_s: float = 2.0) -> None:
        self.path, self.reload_s = path, reload_s
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._bootstrap: KeyRecord | None = None
        if bootstrap:
            salt, digest = _hash(bootstrap)
            self._bootstrap = KeyRecord("bootstrap", "bootstrap", salt, digest, "", False)
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.path is None or (not force and now - self._checked < self.reload_s):
            return
        with self._lock:
            self._checked = now
            try:
                mtime: float | None = self.path.stat().st_mtime
            except FileNotFoundError:
                mtime = None
            if force or mtime != self._mtime:
                self._records = {r.id: r for r in read_keys(self.path)} if mtime is not None else {}
                self._mtime = mtime

    def records(self) -> list[KeyRecord]:
        self._reload()
        return [*self._records.values(), *([self._bootstrap] if self._bootstrap else [])]

    def verify(self, key: str) -> KeyRecord | None:
        """The record of a valid key, else None (constant-time comparison of hashes)."""
        self._reload()
        if key.startswith(_PREFIX):
            record = self._records.get(key[len(_PREFIX) : len(_PREFIX) + 8])
            if record is not None and record.matches(key):
                return record
        if self._bootstrap is not None and self._bootstrap.matches(key):
            return self._bootstrap
        return None


class RateLimiter:
    """Token buckets per key id: ``rate`` tokens per second, at most ``burst``. Thread-safe."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key_id: str, rate: float, burst: int) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds (at least 1), as HTTP requires."""
    return str(max(1, math.ceil(seconds)))


def check_production(config: ApiConfig, ring: KeyRing) -> None:
    """In production mode refuse: development keys, a placeholder or short bootstrap key, no key at all, and
    ``*`` in CORS origins. Outside production mode this does nothing."""
    if not config.production:
        return
    problems = []
    if config.bootstrap_key is not None:
        secret = config.bootstrap_key.get_secret_value()
        if secret.strip().lower() in PLACEHOLDERS or len(secret) < MIN_SECRET_LEN:
            problems.append(f"api.bootstrap_key is a placeholder or shorter than {MIN_SECRET_LEN} characters")
    records = ring.records()
    if any(r.dev for r in records):
        problems.append("the key file holds a development key (revoke it with the keys revoke command)")
    if not records:
        problems.append("no API key is configured (create one, or set api.bootstrap_key)")
    if "*" in config.cors_origins:
        problems.append("api.cors_origins allows '*'")
    if problems:
        raise ApiSecurityError("api.production refuses to start: " + "; ".join(problems))


__all__ = [
    "ApiSecurityError",
    "KeyRecord",
    "KeyRing",
    "RateLimiter",
    "check_production",
    "create_key",
    "issue_dev_key",
    "keys_path",
    "read_keys",
    "retry_after_header",
    "revoke_key",
]
