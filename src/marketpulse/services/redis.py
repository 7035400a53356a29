"""Redis from the system's ``redis-server`` (Debian package), bound to 127.0.0.1, no persistence.

Started as ``redis-server --bind 127.0.0.1 --port <port> --save '' --appendonly no --daemonize no
--dir <run_dir>/redis --logfile <run_dir>/logs/redis.log``; healthy when redis-py's PING answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from marketpulse.services.base import HOST, Service, ToolMissingError


class RedisService(Service):
    """A throw-away Redis for the online store: nothing is saved to disk."""

    name = "redis"
    start_timeout_s = 30.0
    stop_timeout_s = 15.0

    @property
    def ports(self) -> dict[str, int]:
        return {"redis": self.settings.services.redis.port}

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.settings.services.redis.port}/0"

    @property
    def marker(self) -> str:
        return "redis-server"  # redis rewrites its process title to "redis-server 127.0.0.1:<port>"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "redis.log"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server") or next(
            (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).is_file()), None
        )
        if binary is None:
            raise ToolMissingError(
                "redis-server not found: run scripts/services/install-deps.sh (apt-get install redis-server)"
            )
        return [
            binary,
            "--bind",
            HOST,
            "--port",
            str(self.settings.services.redis.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.work_dir),
            "--logfile",
            str(self.log_file),
        ]

    def prepare(self) -> None:
        from marketpulse.store.redis import import_redis

        import_redis()  # the health probe needs redis-py: fail now with the pip install to run
        self.command()  # and redis-server

    def healthy(self) -> bool:
        from marketpulse.store.redis import import_redis

        redis = import_redis()
        client = redis.Redis(host=HOST, port=self.settings.services.redis.port, socket_timeout=1.0)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()
