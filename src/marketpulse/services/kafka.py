"""Kafka (one KRaft node: broker + controller) and a Kafka Connect standalone worker, from Maven Central jars.

* The jars of ``org.apache.kafka:kafka_2.13``, ``connect-runtime``, ``connect-file``, ``connect-json`` and the
  log4j2 binding (``config/kafka/pom.xml``) are copied once by Maven into
  ``<cache_dir>/kafka-<version>/libs``; both JVMs run with ``-cp "<libs>/*"``.
* The broker's storage (``<run_dir>/kafka/data``) is formatted once with ``kafka.tools.StorageTool``. The quorum is
  static (``controller.quorum.voters``), so changing ports later needs no re-format.
* Logs go through ``config/kafka/log4j2.yaml`` to ``<run_dir>/logs/kafka.log`` and ``connect.log``.
* Connectors are added at run time through the Connect REST API: :func:`add_connector`, :func:`delete_connector`.
  A standalone worker keeps them in memory only (their source offsets persist in ``<run_dir>/connect/offsets``):
  after a restart of the worker, add them again.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from marketpulse.errors import MissingDependencyError
from marketpulse.services.base import (
    HOST,
    Progress,
    Service,
    ServiceError,
    ServiceStartError,
    ToolMissingError,
    port_in_use,
)

INSTALL_HINT = "run scripts/services/install-deps.sh"
JAVA_MIN = 17
#: the JVM flags of Kafka's own start scripts (bin/kafka-run-class.sh)
JVM_FLAGS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
]

_quiet = logging.getLogger("marketpulse.services.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


class ConnectError(ServiceError):
    """The Connect REST API refused a request, or a connector/task did not reach RUNNING."""


# ---- files and tools -------------------------------------------------------------------------------------------


def kafka_config_dir() -> Path:
    """``config/kafka`` of the source checkout (pom.xml, log4j2.yaml)."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "config" / "kafka"
        if (candidate / "pom.xml").is_file():
            return candidate
    raise ServiceError("config/kafka/pom.xml not found: run marketpulse services from a source checkout")


@functools.cache
def java_bin() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH, checked to be Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        raise ToolMissingError(f"java not found (Java {JAVA_MIN}+ is needed): {INSTALL_HINT}")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolMissingError(f"cannot run {java} -version: {e}") from e
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(found.group(1)) if found else 0
    if major == 1 and found and found.group(2):  # "1.8.0_x" is Java 8
        major = int(found.group(2))
    if major < JAVA_MIN:
        raise ToolMissingError(f"{java} is Java {major or '?'}; Kafka 4 needs Java {JAVA_MIN}+: {INSTALL_HINT}")
    return java


def kafka_home(cache_dir: Path, version: str) -> Path:
    return cache_dir / f"kafka-{version}"


def ensure_jars(cache_dir: Path, version: str, say: Progress | None = None) -> Path:
    """``<cache_dir>/kafka-<version>/libs`` filled by Maven (once; a partial copy is never used)."""
    libs = kafka_home(cache_dir, version) / "libs"
    if (libs / f"kafka_2.13-{version}.jar").is_file():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(f"mvn (Maven) not found; it fetches the Kafka jars: {INSTALL_HINT}")
    if say is not None:
        say(f"fetching Apache Kafka {version} jars from Maven Central into {libs.parent} (first time only)")
    tmp = libs.with_name(f"libs.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(kafka_config_dir() / "pom.xml"),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired as e:
        raise ServiceError(f"mvn did not finish fetching Kafka {version} in 30 min") from e
    if proc.returncode != 0 or not (tmp / f"kafka_2.13-{version}.jar").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise ServiceError(f"mvn could not fetch Apache Kafka {version} (is the version on Maven Central?):\n{output}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.replace(libs)
    return libs


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters, no leading '-')."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def render_properties(title: str, values: dict[str, object]) -> str:
    """A Java ``.properties`` text with a header saying where it comes from."""
    lines = [f"# {title}", "# Generated by `marketpulse services up`; edits are overwritten (change the config)."]
    lines += [f"{key}={value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def require_confluent_kafka() -> None:
    """confluent-kafka (the health probe) is installed, or :class:`MissingDependencyError` with the pip install."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise MissingDependencyError("confluent-kafka", "kafka") from None


def kafka_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """A broker at ``bootstrap`` answers a metadata request (confluent-kafka AdminClient ``list_topics``)."""
    require_confluent_kafka()
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not port_in_use(int(port), host or HOST):
        return False
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _quiet, "socket.timeout.ms": 2000}
    admin = AdminClient(conf)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return bool(metadata.brokers)


class _JvmService(Service):
    """A JVM of the Kafka distribution: jars from the cache, log4j2 to ``<run_dir>/logs/<name>.log``."""

    main_class: str

    @property
    def version(self) -> str:
        return self.settings.services.kafka.version

    @property
    def log_file(self) -> Path:
        return self.logs_dir / f"{self.name}.log"

    @property
    def properties_file(self) -> Path:
        raise NotImplementedError

    @property
    def marker(self) -> str:
        return str(self.properties_file)

    def jvm(self, heap: list[str], libs: Path) -> list[str]:
        return [
            java_bin(),
            *heap,
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={kafka_config_dir() / 'log4j2.yaml'}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dmarketpulse.log.name={self.name}",
            "-cp",
            f"{libs}/*",
        ]

    def libs(self) -> Path:
        return ensure_jars(self.cache_dir, self.version, self.say)


# ---- the broker ------------------------------------------------------------------------------------------------


class KafkaService(_JvmService):
    """One Kafka node in KRaft mode (broker + controller) on 127.0.0.1."""

    name = "kafka"
    start_timeout_s = 60.0
    main_class = "kafka.Kafka"

    @property
    def ports(self) -> dict[str, int]:
        cfg = self.settings.services.kafka
        return {"broker": cfg.port, "controller": cfg.controller_port}

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.settings.services.kafka.port}"

    @property
    def properties_file(self) -> Path:
        return self.work_dir / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    def server_properties(self) -> str:
        """The broker configuration: one node, replication 1, fast group joins, topics created on first use."""
        cfg = self.settings.services.kafka
        return render_properties(
            f"Kafka {cfg.version} single node (KRaft broker + controller) for MarketPulse",
            {
                "process.roles": "broker,controller",
                "node.id": 1,
                "controller.quorum.voters": f"1@{HOST}:{cfg.controller_port}",
                "listeners": f"PLAINTEXT://{HOST}:{cfg.port},CONTROLLER://{HOST}:{cfg.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{HOST}:{cfg.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                "log.dirs": self.data_dir,
                "num.partitions": 4,
                "auto.create.topics.enable": "true",
                "default.replication.factor": 1,
                "min.insync.replicas": 1,
                "offsets.topic.replication.factor": 1,
                "offsets.topic.num.partitions": 10,
                "transaction.state.log.replication.factor": 1,
                "transaction.state.log.min.isr": 1,
                "transaction.state.log.num.partitions": 10,
                "share.coordinator.state.topic.replication.factor": 1,
                "share.coordinator.state.topic.min.isr": 1,
                "group.initial.rebalance.delay.ms": 0,
                "log.retention.hours": 168,
                "log.segment.bytes": 256 * 1024 * 1024,
            },
        )

    def prepare(self) -> None:
        require_confluent_kafka()
        libs = self.libs()
        self.properties_file.write_text(self.server_properties())
        if (self.data_dir / "meta.properties").is_file():
            return
        self.say(f"formatting storage in {self.data_dir}")
        cmd = [
            *self.jvm(["-Xmx256m"], libs),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            new_cluster_id(),
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, cwd=self.work_dir)
        if proc.returncode != 0:
            output = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise ServiceStartError(f"kafka: formatting {self.data_dir} failed:\n{output}")

    def command(self) -> list[str]:
        heap = self.settings.services.kafka.heap_mb
        return [*self.jvm([f"-Xms{heap}m", f"-Xmx{heap}m"], self.libs()), self.main_class, str(self.properties_file)]

    def healthy(self) -> bool:
        return kafka_answers(self.bootstrap)


# ---- Kafka Connect ---------------------------------------------------------------------------------------------


class ConnectService(_JvmService):
    """A Kafka Connect standalone worker; REST on ``http://127.0.0.1:<port>``; connectors added over REST."""

    name = "connect"
    start_timeout_s = 90.0
    main_class = "org.apache.kafka.connect.cli.ConnectStandalone"

    @property
    def ports(self) -> dict[str, int]:
        return {"rest": self.settings.services.connect.port}

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.settings.services.connect.port}"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.settings.services.kafka.port}"

    @property
    def properties_file(self) -> Path:
        return self.work_dir / "worker.properties"

    @property
    def plugin_dir(self) -> Path:
        """``plugin.path`` of the worker: drop a connector's folder (or uber-jar) here and restart Connect."""
        return self.cache_dir / "connect-plugins"

    def worker_properties(self) -> str:
        """The worker configuration: strings in and out by default (a line of a file = one record value)."""
        return render_properties(
            "Kafka Connect standalone worker for MarketPulse",
            {
                "bootstrap.servers": self.kafka_bootstrap,
                "listeners": f"http://{HOST}:{self.settings.services.connect.port}",
                "rest.advertised.host.name": HOST,
                "rest.advertised.port": self.settings.services.connect.port,
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                "offset.storage.file.filename": self.work_dir / "offsets",
                "offset.flush.interval.ms": 5000,
                "plugin.path": self.plugin_dir,
                # the connectors on the classpath (connect-file, ...) carry ServiceLoader manifests: loading them
                # that way skips a ~3 s reflective scan; plugins dropped in plugin.path may lack manifests
                "plugin.discovery": "hybrid_warn" if self._has_plugins() else "service_load",
            },
        )

    def _has_plugins(self) -> bool:
        return self.plugin_dir.is_dir() and any(self.plugin_dir.iterdir())

    def prepare(self) -> None:
        if not kafka_answers(self.kafka_bootstrap):
            raise ServiceError(
                f"connect needs Kafka at {self.kafka_bootstrap}, which does not answer: "
                "run `marketpulse services up kafka` first"
            )
        self.libs()
        self.plugin_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(self.worker_properties())

    def command(self) -> list[str]:
        heap = self.settings.services.connect.heap_mb
        xms = min(heap, 128)
        return [*self.jvm([f"-Xms{xms}m", f"-Xmx{heap}m"], self.libs()), self.main_class, str(self.properties_file)]

    def healthy(self) -> bool:
        try:
            status, _ = rest(self.url, "GET", "/connectors", timeout_s=2.0)
        except ConnectError:
            return False
        return status == 200

    def add_connector(self, name: str, config: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        return add_connector(name, config, url=self.url, timeout_s=timeout_s)

    def delete_connector(self, name: str) -> bool:
        return delete_connector(name, url=self.url)


# ---- Connect REST helpers --------------------------------------------------------------------------------------


def rest(url: str, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    """One call of the Connect REST API: (HTTP status, decoded JSON body or None). Unreachable → ConnectError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectError(f"Kafka Connect REST at {url} is unreachable: {reason}") from e
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", errors="replace")


def _message(body: Any) -> str:
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)


def connector_status(name: str, *, url: str) -> dict[str, Any] | None:
    """``GET /connectors/<name>/status`` (None when there is no such connector)."""
    status, body = rest(url, "GET", f"/connectors/{name}/status")
    if status == 404:
        return None
    if status != 200:
        raise ConnectError(f"status of connector {name!r}: HTTP {status}: {_message(body)}")
    return dict(body)


def add_connector(name: str, config: dict[str, Any], *, url: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Create (``POST /connectors``) or update (``PUT .../config``) a connector and wait until the connector and
    every task are RUNNING; return its status. A FAILED connector or task, or a timeout → :class:`ConnectError`."""
    config = {str(k): str(v) for k, v in {**config, "name": name}.items()}
    status, body = rest(url, "POST", "/connectors", {"name": name, "config": config})
    if status == 409:  # exists (or a rebalance is in progress): set its config instead
        status, body = rest(url, "PUT", f"/connectors/{name}/config", config)
    if status not in (200, 201):
        raise ConnectError(f"Connect refused connector {name!r}: HTTP {status}: {_message(body)}")
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = connector_status(name, url=url)
        if last is not None:
            states = [last["connector"]["state"]] + [t["state"] for t in last.get("tasks", [])]
            failed = [t for t in [last["connector"], *last.get("tasks", [])] if t.get("state") == "FAILED"]
            if failed:
                trace = str(failed[0].get("trace", "")).strip().splitlines()[:3]
                raise ConnectError(f"connector {name!r} FAILED: {' | '.join(trace) or last}")
            if last.get("tasks") and all(s == "RUNNING" for s in states):
                return last
        time.sleep(0.25)
    raise ConnectError(f"connector {name!r} not RUNNING after {timeout_s:.0f} s; last status: {last}")


def delete_connector(name: str, *, url: str) -> bool:
    """``DELETE /connectors/<name>``; True when it existed."""
    status, body = rest(url, "DELETE", f"/connectors/{name}")
    if status == 404:
        return False
    if status not in (200, 204):
        raise ConnectError(f"Connect refused to delete connector {name!r}: HTTP {status}: {_message(body)}")
    return True
