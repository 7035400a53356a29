"""Unit tests of marketpulse.services: PID files, idempotent up/down, stale and foreign PIDs, start failures,
config → properties rendering, the Connect REST helpers (against a fake server) and the CLI.

The process-level tests run a tiny Python TCP server as the "service" (fast, no Java, no Redis).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from marketpulse.config import Settings
from marketpulse.services import (
    SERVICES,
    ConnectError,
    ConnectService,
    KafkaService,
    PortInUseError,
    RedisService,
    Service,
    ServiceError,
    ServiceStartError,
    ToolMissingError,
    add_connector,
    delete_connector,
    get_services,
)
from marketpulse.services import kafka as kafka_mod
from marketpulse.services.base import pid_alive, port_in_use
from marketpulse.services.cli import services_app

FAKE_SERVER = r"""
import signal, socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
if mode == "crash":
    print("boom: the fake service refuses its config", flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
greeting = b"" if mode == "silent" else b"fake-ok"
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
print("fake service listening", flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(greeting)
    conn.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MARKETPULSE"):
            monkeypatch.delenv(name)


def make_settings(tmp_path: Path, **services: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", services={"run_dir": tmp_path / "run", **services})


class FakeService(Service):
    """A Python TCP server that greets with b'fake-ok'; ``mode``: serve, crash, stubborn (ignores SIGTERM),
    silent (listens, never greets: never healthy)."""

    name = "fake"
    start_timeout_s = 15.0
    stop_timeout_s = 1.0
    poll_s = 0.05

    def __init__(self, settings: Settings, port: int, mode: str = "serve") -> None:
        super().__init__(settings)
        self.port, self.mode = port, mode
        self.script = self.run_dir / "fake_server.py"

    @property
    def ports(self) -> dict[str, int]:
        return {"main": self.port}

    @property
    def marker(self) -> str:
        return str(self.script)

    def prepare(self) -> None:
        self.script.write_text(FAKE_SERVER)

    def command(self) -> list[str]:
        return [sys.executable, str(self.script), str(self.port), self.mode]

    def healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.settimeout(0.5)
                return s.recv(7) == b"fake-ok"
        except OSError:
            return False


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeService]:
    svc = FakeService(make_settings(tmp_path), free_port())
    yield svc
    svc.down()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---- PID file, up, down, status --------------------------------------------------------------------------------


def test_up_writes_the_pid_file_and_down_stops_and_removes_it(fake: FakeService) -> None:
    assert fake.status().state == "stopped"
    started = fake.up()
    assert started.action == "started"
    pid = fake.read_pid()
    assert pid is not None and pid == started.status.pid
    assert fake.status().state == "running" and fake.healthy()
    assert fake.pid_file == fake.run_dir / "fake.pid"
    assert "fake service listening" in fake.out_file.read_text()

    stopped = fake.down()
    assert stopped.action == "stopped"
    assert not fake.pid_file.exists()
    assert not pid_alive(pid)
    assert fake.status().state == "stopped"
    assert not port_in_use(fake.port)


def test_up_twice_keeps_the_running_process(fake: FakeService) -> None:
    first = fake.up()
    second = fake.up()
    assert second.action == "already running"
    assert second.status.pid == first.status.pid
    again = FakeService(fake.settings, fake.port)  # a new CLI invocation: state comes from the PID file only
    assert again.up().action == "already running"


def test_down_when_nothing_runs_is_harmless(fake: FakeService) -> None:
    assert fake.down().action == "not running"
    assert fake.down().action == "not running"


def test_down_of_a_stale_pid_file_only_removes_it(fake: FakeService) -> None:
    fake.run_dir.mkdir(parents=True)
    fake.pid_file.write_text(f"{dead_pid()}\n")
    status = fake.status()
    assert status.state == "stale" and "no such process" in status.detail
    assert fake.down().action == "stale removed"
    assert not fake.pid_file.exists()


def test_a_recycled_pid_is_stale_and_never_signalled(fake: FakeService) -> None:
    fake.run_dir.mkdir(parents=True)
    fake.pid_file.write_text(f"{os.getpid()}\n")  # alive, but it is pytest, not the fake service
    status = fake.status()
    assert status.state == "stale" and "another program" in status.detail
    assert fake.down().action == "stale removed"  # and we are still alive to check it
    assert not fake.pid_file.exists()


def test_garbage_in_the_pid_file_is_stale(fake: FakeService) -> None:
    fake.run_dir.mkdir(parents=True)
    fake.pid_file.write_text("not a pid\n")
    assert fake.read_pid() is None
    assert fake.status().state == "stale"


def test_up_replaces_a_stale_pid_file(fake: FakeService) -> None:
    fake.run_dir.mkdir(parents=True)
    old = dead_pid()
    fake.pid_file.write_text(f"{old}\n")
    result = fake.up()
    assert result.action == "started" and result.status.pid != old
    assert any("stale PID file" in note for note in result.notes)


def test_a_port_held_by_a_stranger_is_refused(fake: FakeService) -> None:
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", fake.port))
        stranger.listen()
        assert fake.status().state == "external"
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{fake.port}"):
            fake.up()
    assert not fake.pid_file.exists()


def test_the_same_service_started_elsewhere_is_used_and_left_alone(tmp_path: Path, fake: FakeService) -> None:
    fake.up()
    other = FakeService(make_settings(tmp_path / "other"), fake.port)
    result = other.up()
    assert result.action == "external"
    assert not other.pid_file.exists()
    assert other.down().action == "not running"
    assert fake.status().state == "running"


def test_a_crash_at_start_raises_with_the_log_tail(tmp_path: Path) -> None:
    svc = FakeService(make_settings(tmp_path), free_port(), mode="crash")
    with pytest.raises(ServiceStartError) as info:
        svc.up()
    assert "exited during start" in str(info.value)
    assert "boom: the fake service refuses its config" in str(info.value)
    assert not svc.pid_file.exists()
    assert svc.status().state == "stopped"


class ImpatientFake(FakeService):
    start_timeout_s = 1.0


def test_a_service_that_never_answers_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    svc = ImpatientFake(make_settings(tmp_path), free_port(), mode="silent")
    with pytest.raises(ServiceStartError, match="did not answer within 1 s") as info:
        svc.up()
    assert "fake service listening" in str(info.value)  # the log tail
    assert not svc.pid_file.exists()
    assert not port_in_use(svc.port)


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    svc = FakeService(make_settings(tmp_path), free_port(), mode="stubborn")
    pid = svc.up().status.pid
    assert pid is not None
    assert svc.down().action == "killed"
    assert not pid_alive(pid)
    assert not svc.pid_file.exists()


def test_the_process_survives_its_starter(tmp_path: Path) -> None:
    """Detached: its own session, so a Ctrl-C in the terminal of `services up` does not reach it."""
    svc = FakeService(make_settings(tmp_path), free_port())
    try:
        pid = svc.up().status.pid
        assert pid is not None
        assert os.getsid(pid) == pid != os.getsid(0)
    finally:
        svc.down()


# ---- registry and defaults -------------------------------------------------------------------------------------


def test_get_services_orders_and_refuses_unknown_names(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert [s.name for s in get_services(settings)] == ["redis", "kafka", "connect"]
    assert [s.name for s in get_services(settings, ["connect", "redis"])] == ["redis", "connect"]
    assert list(SERVICES) == ["redis", "kafka", "connect"]
    with pytest.raises(ServiceError, match="allowed: redis, kafka, connect"):
        get_services(settings, ["zookeeper"])


def test_default_run_and_cache_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    svc = RedisService(Settings())
    assert svc.run_dir == tmp_path / "data" / "services"
    assert svc.cache_dir == tmp_path / "home" / ".cache" / "marketpulse"
    assert svc.pid_file == tmp_path / "data" / "services" / "redis.pid"


# ---- config → properties ---------------------------------------------------------------------------------------


def props(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return {k: v for k, v in pairs}


def test_server_properties_follow_the_config(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, kafka={"port": 39192, "controller_port": 39193, "version": "4.0.0"})
    svc = KafkaService(settings)
    p = props(svc.server_properties())
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.voters"] == "1@127.0.0.1:39193"
    assert p["listeners"] == "PLAINTEXT://127.0.0.1:39192,CONTROLLER://127.0.0.1:39193"
    assert p["advertised.listeners"] == "PLAINTEXT://127.0.0.1:39192"
    assert p["log.dirs"] == str(tmp_path / "run" / "kafka" / "data")
    assert p["group.initial.rebalance.delay.ms"] == "0"
    assert p["auto.create.topics.enable"] == "true"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert p[key] == "1"
    assert "controller.quorum.bootstrap.servers" not in p  # static quorum: format without --standalone
    assert svc.ports == {"broker": 39192, "controller": 39193}
    assert svc.bootstrap == "127.0.0.1:39192"


def test_kafka_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path, cache_dir=tmp_path / "cache", kafka={"heap_mb": 384, "version": "4.1.1"})
    libs = tmp_path / "cache" / "kafka-4.1.1" / "libs"
    libs.mkdir(parents=True)
    (libs / "kafka_2.13-4.1.1.jar").touch()
    monkeypatch.setattr(kafka_mod, "java_bin", lambda: "/usr/bin/java")
    svc = KafkaService(settings)
    argv = svc.command()
    assert argv[0] == "/usr/bin/java"
    assert "-Xmx384m" in argv and "-Xms384m" in argv
    assert argv[argv.index("-cp") + 1] == f"{libs}/*"
    assert argv[-2:] == ["kafka.Kafka", str(svc.properties_file)]
    assert f"-Dkafka.logs.dir={tmp_path / 'run' / 'logs'}" in argv
    assert any(a.startswith("-Dlog4j2.configurationFile=") and a.endswith("log4j2.yaml") for a in argv)
    assert svc.marker in " ".join(argv)
    assert svc.log_file == tmp_path / "run" / "logs" / "kafka.log"


def test_worker_properties_follow_the_config(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, cache_dir=tmp_path / "cache", kafka={"port": 39192}, connect={"port": 38183})
    svc = ConnectService(settings)
    p = props(svc.worker_properties())
    assert p["bootstrap.servers"] == "127.0.0.1:39192"
    assert p["listeners"] == "http://127.0.0.1:38183"
    assert p["offset.storage.file.filename"] == str(tmp_path / "run" / "connect" / "offsets")
    assert p["plugin.path"] == str(tmp_path / "cache" / "connect-plugins")
    assert p["plugin.discovery"] == "service_load"  # nothing in plugin.path: the classpath plugins have manifests
    (tmp_path / "cache" / "connect-plugins" / "my-connector").mkdir(parents=True)
    assert props(svc.worker_properties())["plugin.discovery"] == "hybrid_warn"
    assert svc.url == "http://127.0.0.1:38183"


def test_redis_command_line(tmp_path: Path) -> None:
    svc = RedisService(make_settings(tmp_path, redis={"port": 36479}))
    try:
        argv = svc.command()
    except ToolMissingError:
        pytest.skip("redis-server is not installed")
    joined = " ".join(argv)
    assert "--bind 127.0.0.1 --port 36479" in joined
    assert argv[argv.index("--save") + 1] == ""
    assert "--appendonly no" in joined and "--daemonize no" in joined
    assert argv[argv.index("--dir") + 1] == str(tmp_path / "run" / "redis")
    assert svc.url == "redis://127.0.0.1:36479/0"


def test_pom_and_log4j_config_exist() -> None:
    config = kafka_mod.kafka_config_dir()
    pom = (config / "pom.xml").read_text()
    for artifact in ("kafka_2.13", "connect-runtime", "connect-file", "connect-json", "log4j-slf4j-impl"):
        assert f"<artifactId>{artifact}</artifactId>" in pom
    assert "<kafka.version>4.1.1</kafka.version>" in pom
    assert "kafka.logs.dir" in (config / "log4j2.yaml").read_text()


def test_cluster_id_shape() -> None:
    ids = {kafka_mod.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_missing_maven_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_mod.shutil, "which", lambda name: None)
    with pytest.raises(ToolMissingError, match=r"install-deps\.sh"):
        kafka_mod.ensure_jars(tmp_path / "cache", "4.1.1")


def test_connect_refuses_to_start_without_kafka(tmp_path: Path) -> None:
    pytest.importorskip("confluent_kafka")
    svc = ConnectService(make_settings(tmp_path, kafka={"port": free_port()}, connect={"port": free_port()}))
    with pytest.raises(ServiceError, match="services up kafka"):
        svc.up()
    assert not svc.pid_file.exists()


# ---- Connect REST helpers against a fake worker ----------------------------------------------------------------


class FakeConnect(BaseHTTPRequestHandler):
    connectors: ClassVar[dict[str, dict[str, Any]]] = {}
    task_state: ClassVar[str] = "RUNNING"

    def _send(self, code: int, body: Any = None) -> None:
        raw = json.dumps(body).encode() if body is not None else b""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_POST(self) -> None:
        body = self._body()
        if body["name"] in self.connectors:
            self._send(409, {"error_code": 409, "message": f"Connector {body['name']} already exists"})
            return
        self.connectors[body["name"]] = body["config"]
        self._send(201, body)

    def do_PUT(self) -> None:
        name = self.path.split("/")[2]
        self.connectors[name] = self._body()
        self._send(200, {"name": name})

    def do_GET(self) -> None:
        name = self.path.split("/")[2]
        if name not in self.connectors:
            self._send(404, {"error_code": 404, "message": f"No status found for connector {name}"})
            return
        trace = "java.lang.IllegalStateException: no such file\n\tat somewhere"
        task = {"id": 0, "state": self.task_state, "trace": trace}
        self._send(200, {"name": name, "connector": {"state": "RUNNING"}, "tasks": [task]})

    def do_DELETE(self) -> None:
        name = self.path.split("/")[2]
        if self.connectors.pop(name, None) is None:
            self._send(404, {"error_code": 404, "message": "not found"})
        else:
            self._send(204)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def connect_url() -> Iterator[str]:
    FakeConnect.connectors = {}
    FakeConnect.task_state = "RUNNING"
    server = HTTPServer(("127.0.0.1", 0), FakeConnect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_add_connector_waits_for_running_and_updates_an_existing_one(connect_url: str) -> None:
    status = add_connector("lines", {"connector.class": "FileStreamSource", "tasks.max": 1}, url=connect_url)
    assert status["tasks"][0]["state"] == "RUNNING"
    assert FakeConnect.connectors["lines"]["tasks.max"] == "1"  # values sent as strings, name included
    assert FakeConnect.connectors["lines"]["name"] == "lines"
    add_connector("lines", {"connector.class": "FileStreamSource", "tasks.max": 2}, url=connect_url)
    assert FakeConnect.connectors["lines"]["tasks.max"] == "2"
    assert delete_connector("lines", url=connect_url) is True
    assert delete_connector("lines", url=connect_url) is False


def test_a_failed_task_raises_with_its_trace(connect_url: str) -> None:
    FakeConnect.task_state = "FAILED"
    with pytest.raises(ConnectError, match=r"FAILED: java\.lang\.IllegalStateException: no such file"):
        add_connector("broken", {"connector.class": "FileStreamSource"}, url=connect_url)


def test_an_unreachable_worker_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match="unreachable"):
        delete_connector("x", url=f"http://127.0.0.1:{free_port()}")


# ---- the CLI ---------------------------------------------------------------------------------------------------


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        "MARKETPULSE__SERVICES__RUN_DIR": str(tmp_path / "run"),
        "MARKETPULSE__SERVICES__KAFKA__PORT": str(free_port()),
        "MARKETPULSE__SERVICES__KAFKA__CONTROLLER_PORT": str(free_port()),
        "MARKETPULSE__SERVICES__CONNECT__PORT": str(free_port()),
        "MARKETPULSE__SERVICES__REDIS__PORT": str(free_port()),
    }


def test_cli_status_json(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "kafka.pid").write_text(f"{dead_pid()}\n")
    result = CliRunner().invoke(services_app, ["status", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    states = {s["name"]: s for s in report["services"]}
    assert list(states) == ["redis", "kafka", "connect"]
    assert states["redis"]["state"] == "stopped"
    assert states["redis"]["port"] == int(env["MARKETPULSE__SERVICES__REDIS__PORT"])
    assert states["kafka"]["state"] == "stale"
    assert states["kafka"]["ports"]["controller"] == int(env["MARKETPULSE__SERVICES__KAFKA__CONTROLLER_PORT"])
    assert states["connect"]["log"] == str(tmp_path / "run" / "logs" / "connect.log")


def test_cli_down_removes_stale_pid_files_and_refuses_unknown_names(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "redis.pid").write_text(f"{dead_pid()}\n")
    result = CliRunner().invoke(services_app, ["down"], env=env)
    assert result.exit_code == 0, result.output
    assert "redis: not running; stale PID file" in result.stdout
    assert not (tmp_path / "run" / "redis.pid").exists()
    bad = CliRunner().invoke(services_app, ["up", "zookeeper"], env=env)
    assert bad.exit_code == 2
    assert "allowed: redis, kafka, connect" in bad.stderr


def test_cli_up_connect_without_kafka_fails_clearly(tmp_path: Path) -> None:
    pytest.importorskip("confluent_kafka")
    result = CliRunner().invoke(services_app, ["up", "connect"], env=cli_env(tmp_path))
    assert result.exit_code == 1
    assert "run `marketpulse services up kafka` first" in result.stderr
