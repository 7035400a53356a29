"""The ``marketpulse`` command line: ``run``, ``replay``, ``persist``, ``train``, ``evaluate``, ``backtest``, ``bench``,
``services``, ``version``.

Known failures (a file that cannot be read, a broken config) print one line on stderr and exit non-zero,
without a traceback. Commands that report figures accept ``--json`` and then print exactly one JSON object.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from marketpulse import __version__
from marketpulse.api.cli import bench_api, keys_app, serve
from marketpulse.clock import ReplayClock, parse_speed
from marketpulse.config import Settings, load_settings
from marketpulse.dashboard.cli import dashboard
from marketpulse.errors import ConfigError, MarketPulseError
from marketpulse.fusion.cli import backtest_command, evaluate_fusion
from marketpulse.predict.cli import evaluate_price, train_app
from marketpulse.sentiment.cli import train_sentiment
from marketpulse.services.cli import services_app

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MarketPulse: prices and talk, one signal.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (figures, not tests); see docs/performance.md.")
app.add_typer(bench_app, name="bench")
app.add_typer(services_app, name="services")
evaluate_app = typer.Typer(no_args_is_help=True, help="Evaluations on labelled data (honest splits, baselines beside).")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(train_app, name="train")
evaluate_app.command("price")(evaluate_price)
evaluate_app.command("fusion")(evaluate_fusion)
app.command("backtest")(backtest_command)
app.command("serve")(serve)
app.add_typer(keys_app, name="keys")
bench_app.command("api")(bench_api)
app.command("dashboard")(dashboard)
train_app.command("sentiment")(train_sentiment)
err = Console(stderr=True)
out = Console()


class _State:
    config_file: Path | None = None
    data_dir: Path | None = None

    def settings(self) -> Settings:
        return load_settings(self.config_file, self.data_dir)


state = _State()


@app.callback()
def _global(
    config: Annotated[Path | None, typer.Option("--config", help="YAML file over the defaults")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", envvar="MARKETPULSE_DATA_DIR", help="where stores and models live")
    ] = None,
) -> None:
    state.config_file, state.data_dir = config, data_dir


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@app.command()
def replay(
    source: Annotated[Path, typer.Option("--source", help="file (or StockNet folder) to replay")],
    kind: Annotated[str, typer.Option("--kind", help="bars|ticks|posts|news")],
    symbol: Annotated[str | None, typer.Option("--symbol", help="symbol for files without a symbol column")] = None,
    speed: Annotated[str | None, typer.Option("--speed", help="N (× real time) or max")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object with the counters")] = False,
    publish_only: Annotated[
        bool, typer.Option("--publish-only", help="publish only; `marketpulse persist` stores from the bus")
    ] = False,
) -> None:
    """Replay a file through validation into the bus and the stores."""
    from marketpulse.ingest import open_source
    from marketpulse.pipeline import Pipeline

    if kind not in ("bars", "ticks", "posts", "news"):
        _fail(f"--kind: got {kind!r}; allowed: bars, ticks, posts, news", 2)
    try:
        settings = state.settings()
        pace = parse_speed(speed if speed is not None else settings.replay.speed)
        src = open_source(source, kind, symbol=symbol, naive_tz=settings.validation.naive_timezone)  # type: ignore[arg-type]
        pipeline = Pipeline.from_settings(settings, store=not publish_only)
    except ConfigError as e:
        _fail(str(e), 2)
        return
    except ValueError as e:
        _fail(f"--speed: {e}", 2)
        return
    except MarketPulseError as e:
        _fail(str(e))
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    clock = ReplayClock(pace, stop=stop)
    try:
        if as_json:
            counters = pipeline.replay([src], clock)
        else:
            with _progress(f"replay {source.name}") as update:
                counters = pipeline.replay([src], clock, on_progress=update)
    except MarketPulseError as e:
        _fail(str(e))
        return
    finally:
        pipeline.close()
    report = {"source": str(source), "kind": kind, **counters.as_dict()}
    if as_json:
        print(json.dumps(report))
    else:
        _summary(report)


def _progress(title: str) -> Any:
    from contextlib import contextmanager

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def ctx() -> Any:
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        task = progress.add_task(title, total=None, info="")
        with progress:

            def update(c: Any) -> None:
                progress.update(
                    task, info=f"read {c.read:,}  accepted {c.accepted:,}  dead-lettered {c.deadlettered:,}"
                )

            yield update

    return ctx()


def _summary(report: dict[str, Any]) -> None:
    table = Table(title=f"{report['kind']} from {report['source']}", show_header=False)
    for key in ("read", "accepted", "deadlettered", "published", "stored", "seconds"):
        table.add_row(key, f"{report[key]:,}" if isinstance(report[key], int) else str(report[key]))
    for reason, n in report["reasons"].items():
        table.add_row(f"  {reason}", f"{n:,}")
    out.print(table)


@app.command()
def run(
    speed: Annotated[str | None, typer.Option("--speed", help="N (× real time) or max; default from config")] = None,
    once: Annotated[bool, typer.Option("--once", help="exit when the demo replay ends")] = False,
    symbols: Annotated[str | None, typer.Option("--symbols", help="comma-separated subset of the demo")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="no live view; print the counters as JSON at the end")
    ] = False,
    serve_api: Annotated[
        bool | None, typer.Option("--api/--no-api", help="serve REST + WebSocket (default: on, off with --once)")
    ] = None,
    with_dashboard: Annotated[
        bool | None, typer.Option("--dashboard/--no-dashboard", help="start the Streamlit dashboard (as --api)")
    ] = None,
) -> None:
    """The main job: the embedded pipeline replaying the bundled demo sample, served by the API and the dashboard,
    until Ctrl-C."""
    from marketpulse.demo import demo_sources
    from marketpulse.pipeline import Pipeline

    try:
        settings = state.settings()
        pace = parse_speed(speed if speed is not None else settings.run.speed)
        chosen = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else (settings.run.symbols or None)
        sources = demo_sources(chosen)
        pipeline = Pipeline.from_settings(settings)
    except ConfigError as e:
        _fail(str(e), 2)
        return
    except ValueError as e:
        _fail(f"--speed: {e}", 2)
        return
    except MarketPulseError as e:
        _fail(str(e))
        return
    from marketpulse.engine.local import LocalEngine

    stop = threading.Event()
    _stop_on_signals(stop)
    clock = ReplayClock(pace, max_gap_s=settings.run.max_gap_s, stop=stop)
    from marketpulse.monitoring.alerts import AlertManager
    from marketpulse.predict.online import build_predictor

    engine = LocalEngine(
        pipeline.bus,
        pipeline.online,
        pipeline.history,
        sentiment_model=settings.sentiment.model,
        sentiment_options=settings.sentiment.options(),
        predictor=build_predictor(settings),
        alerts=AlertManager.from_config(settings.alerts, pipeline.bus) if settings.alerts.enabled else None,
        fusion=settings.fusion,
    )
    serving = _Serving(
        settings, pipeline, engine, not once if serve_api is None else serve_api, with_dashboard, quiet=as_json
    )
    try:
        serving.start()
        if as_json:
            counters = pipeline.replay(sources, clock, after_emit=engine.drain)
            engine.drain()
            engine.finish()
            engine.drain()
        else:
            with Live(console=out, refresh_per_second=4) as live:
                counters = pipeline.replay(
                    sources,
                    clock,
                    on_progress=lambda c: live.update(_dashboard(pipeline, c, engine)),
                    after_emit=engine.drain,
                )
                engine.drain()
                engine.finish()
                engine.drain()
                live.update(_dashboard(pipeline, counters, engine))
                if not once and not stop.is_set():
                    out.print("[green]demo replay finished[/] — Ctrl-C to exit")
                    stop.wait()
    finally:
        serving.stop()
        engine.close()
        pipeline.close()
    if as_json:
        engine_report = {**engine.counters.as_dict(), "sentiment_model": engine.model.name}
        if engine.alerts is not None:
            engine_report["alerts"] = engine.alerts.stats()
        print(json.dumps({"command": "run", **counters.as_dict(), "engine": engine_report}))


class _Serving:
    """The API (background thread) and the dashboard (a Streamlit process) beside ``run``; either is skipped with a
    one-line note when its extra is not installed or its port is taken — the pipeline runs regardless."""

    def __init__(
        self, settings: Settings, pipeline: Any, engine: Any, api: bool, dashboard: bool | None, quiet: bool
    ) -> None:
        self.settings, self.pipeline, self.engine, self.quiet = settings, pipeline, engine, quiet
        self.want_api, self.want_dashboard = api, api if dashboard is None else dashboard
        self.server: Any = None
        self.dashboard: Any = None

    def _note(self, message: str) -> None:
        if not self.quiet:
            err.print(message, highlight=False, soft_wrap=True)

    def start(self) -> None:
        if not self.want_api:
            return
        try:
            from marketpulse.api.server import start_embedded

            self.server, key = start_embedded(self.settings, self.pipeline, self.engine)
        except ImportError as e:
            self._note(f"API not started ({e}); install it with pip install -e '.[api]'")
            return
        except MarketPulseError as e:
            self._note(f"API not started: {e}")
            return
        self._note(f"API       {self.server.url}/docs   key: {key or '(production: use your configured key)'}")
        if not self.want_dashboard:
            return
        try:
            from marketpulse.dashboard.launch import start_dashboard

            log = Path(self.settings.data_dir) / "dashboard.log"
            self.dashboard = start_dashboard(self.server.url, key or None, port=8501, log_path=log)
        except ImportError as e:
            self._note(f"dashboard not started ({e}); install it with pip install -e '.[dashboard]'")
            return
        except (MarketPulseError, OSError) as e:
            self._note(f"dashboard not started: {e}")
            return
        self._note(f"dashboard {self.dashboard.url}")

    def stop(self) -> None:
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.server is not None:
            self.server.stop()  # before the pipeline closes: the hub consumes from its bus


def _dashboard(pipeline: Any, c: Any, engine: Any) -> Table:
    when = datetime.fromtimestamp(c.event_ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M UTC") if c.event_ts_ns else "-"
    table = Table(title=f"MarketPulse demo — event time {when}", caption="Ctrl-C to stop")
    for column, justify in (
        ("symbol", "left"),
        ("last price", "right"),
        ("1-min close", "right"),
        ("RSI 14", "right"),
        ("1-min ret", "right"),
        ("daily close", "right"),
        ("sentiment", "right"),
        ("p(up)", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    online = pipeline.online

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    for sym in online.symbols("ticks") or online.symbols("bars"):
        tick = online.get("ticks", sym) or {}
        bar = online.get("bars", sym) or {}
        minute = online.get("bars_60s", sym) or {}
        feats = online.get("features_60s", sym) or {}
        senti = online.get("sentiment", sym) or {}
        pred = online.get("predictions", sym) or {}
        rsi = feats.get("rsi_14")
        table.add_row(
            sym,
            num(tick.get("price"), ".2f"),
            num(minute.get("close"), ".2f"),
            num(None if rsi is None else (rsi + 0.5) * 100, ".1f"),
            num(feats.get("ret_1"), "+.4%"),
            num(bar.get("close"), ".2f"),
            num(senti.get("polarity"), "+.3f"),
            num(pred.get("p_up"), ".2f"),
        )
    rate = c.read / c.seconds if c.seconds > 0 else 0.0
    e = engine.counters
    table.add_section()
    table.add_row("read / accepted / dead-lettered", f"{c.read:,}", f"{c.accepted:,}", f"{c.deadlettered:,}")
    for kind, n in sorted(c.emitted.items()):
        table.add_row(f"  {kind} emitted", f"{n:,}")
    table.add_row("engine: 1-min bars / features", f"{e.bars_built:,}", f"{e.features:,}")
    table.add_row("engine: posts scored / rejected", f"{e.scores:,}", f"{sum(e.posts_rejected.values()):,}")
    table.add_row("engine: price predictions", f"{e.predictions:,}")
    table.add_row("records/s", f"{rate:,.0f}")
    return table


def _backends(settings: Settings) -> Any:
    from marketpulse.pipeline import Pipeline

    return Pipeline.from_settings(settings)


@app.command()
def persist(
    topics: Annotated[
        str, typer.Option("--topics", help="comma-separated topics to store")
    ] = "market.bars,market.ticks,social.posts,news.articles,ingest.deadletter",
    group: Annotated[str, typer.Option("--group", help="consumer group")] = "marketpulse-persist",
    idle: Annotated[float | None, typer.Option("--idle", help="exit after this many seconds without records")] = None,
    max_records: Annotated[int, typer.Option("--max-records", help="records per poll (and per commit)")] = 2000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Store what is on the bus (history + online), committing after each stored batch, until Ctrl-C."""
    from marketpulse.streams import persist as run_persist

    try:
        pipeline = _backends(state.settings())
    except MarketPulseError as e:
        _fail(str(e), 2 if isinstance(e, ConfigError) else 1)
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        counters = run_persist(
            pipeline.bus,
            pipeline.history,
            pipeline.online,
            [t.strip() for t in topics.split(",") if t.strip()],
            group=group,
            stop=stop,
            idle_s=idle,
            max_records=max_records,
        )
    except MarketPulseError as e:
        _fail(str(e))
        return
    finally:
        pipeline.close()
    if as_json:
        print(json.dumps({"command": "persist", **counters.as_dict()}))
    else:
        out.print(counters.as_dict())


@app.command("ingest-topic")
def ingest_topic(
    topic: Annotated[str, typer.Option("--topic", help="topic of raw CSV lines (e.g. from Kafka Connect)")],
    kind: Annotated[str, typer.Option("--kind", help="bars|ticks")] = "ticks",
    header: Annotated[
        str | None, typer.Option("--header", help="column names, e.g. timestamp,symbol,price,size")
    ] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="symbol for lines without a symbol column")] = None,
    group: Annotated[str | None, typer.Option("--group", help="consumer group")] = None,
    idle: Annotated[float | None, typer.Option("--idle", help="exit after this many seconds without records")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate raw lines from a topic into the bus and the stores (the Kafka Connect ingestion path)."""
    from marketpulse.streams import ingest_topic as run_ingest

    if kind not in ("bars", "ticks"):
        _fail(f"--kind: got {kind!r}; allowed: bars, ticks", 2)
    try:
        pipeline = _backends(state.settings())
    except MarketPulseError as e:
        _fail(str(e), 2 if isinstance(e, ConfigError) else 1)
        return
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        streamed = run_ingest(
            pipeline,
            topic,
            "bars" if kind == "bars" else "ticks",
            header=header,
            symbol=symbol,
            group=group,
            stop=stop,
            idle_s=idle,
        )
    except MarketPulseError as e:
        _fail(str(e))
        return
    finally:
        pipeline.close()
    report = {"command": "ingest-topic", "topic": topic, **pipeline.counters.as_dict(), "stream": streamed.as_dict()}
    if as_json:
        print(json.dumps(report))
    else:
        out.print(report)


def _print_report(report: dict[str, Any], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in report.items():
        table.add_row(str(key), f"{value:,}" if isinstance(value, int) else str(value))
    out.print(table)


@bench_app.command("ingest")
def bench_ingest(
    ticks: Annotated[int, typer.Option(help="ticks in the generated CSV")] = 2_000_000,
    bars: Annotated[int, typer.Option(help="bars written to the history store")] = 500_000,
    repeat: Annotated[int, typer.Option(help="runs per figure (best kept)")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ticks/s through parse → validate → bus, rows/s into the history store, each beside a reference."""
    from marketpulse.bench import bench_ingest as run_bench

    _print_report(run_bench(ticks, bars, repeat), "bench ingest", as_json)


@bench_app.command("bus")
def bench_bus(
    bus_type: Annotated[str, typer.Option("--type", help="memory|kafka")] = "memory",
    messages: Annotated[int, typer.Option(help="messages per run")] = 1_000_000,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (default: bus config)")] = None,
    repeat: Annotated[int, typer.Option(help="runs (best kept)")] = 2,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Messages/s produce + consume through the bus adapter, beside the raw client measured in the same run."""
    from marketpulse.bench import bench_bus as run_bench

    if bus_type not in ("memory", "kafka"):
        _fail(f"--type: got {bus_type!r}; allowed: memory, kafka", 2)
    if bootstrap is None and bus_type == "kafka":
        bus_cfg = state.settings().bus
        bootstrap = getattr(bus_cfg, "bootstrap_servers", None)
    try:
        report = run_bench(bus_type, messages, bootstrap, repeat)
    except MarketPulseError as e:
        _fail(str(e))
        return
    _print_report(report, f"bench bus ({bus_type})", as_json)


@bench_app.command("indicators")
def bench_indicators(
    points: Annotated[int, typer.Option(help="points per series")] = 1_000_000,
    repeat: Annotated[int, typer.Option(help="runs per figure (best kept)")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Indicators on a series of N points: ours (batch, micro-batch, incremental) beside TA-Lib."""
    from marketpulse.bench_indicators import bench_indicators as run_bench

    _print_report(run_bench(points, repeat), "bench indicators", as_json)


@bench_app.command("bars")
def bench_bars(
    ticks: Annotated[int, typer.Option(help="ticks")] = 2_000_000,
    symbols: Annotated[int, typer.Option(help="symbols")] = 100,
    repeat: Annotated[int, typer.Option(help="runs per figure (best kept)")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ticks → time bars in micro-batches beside a pandas groupby reference."""
    from marketpulse.bench_bars import bench_bars as run_bench

    _print_report(run_bench(ticks, symbols, repeat), "bench bars", as_json)


@bench_app.command("sentiment")
def bench_sentiment(
    texts: Annotated[int | None, typer.Option(help="texts (default 20,000 lexicon, 3,000 transformer)")] = None,
    repeat: Annotated[int, typer.Option(help="runs per figure (best kept)")] = 3,
    model: Annotated[
        str, typer.Option("--model", help="lexicon | transformer | transformer-fast | ensemble")
    ] = "lexicon",
    precision: Annotated[
        str | None, typer.Option(help="trained models: fp32 | bf16 | int8 | auto [default: the model's own]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Lexicon texts/s beside VADER alone; or (a trained ``--model``) its texts/s and batch latency beside the
    lexicon on the same tweet-length texts."""
    from marketpulse.bench_sentiment import bench_sentiment as run_bench
    from marketpulse.bench_sentiment import bench_transformer

    trained = ("transformer", "transformer-fast", "ensemble")
    if model not in ("lexicon", *trained):
        _fail(f"--model {model!r}: allowed values are lexicon, {', '.join(trained)}", 2)
        return
    if precision not in (None, "fp32", "bf16", "int8", "auto"):
        _fail(f"--precision {precision!r}: allowed values are fp32, bf16, int8, auto", 2)
        return
    try:
        if model in trained:
            report = bench_transformer(texts or 3_000, precision=precision, model=model)
        else:
            report = run_bench(texts or 20_000, repeat)
    except MarketPulseError as e:
        _fail(str(e), 2 if isinstance(e, ConfigError) else 1)
        return
    _print_report(report, "bench sentiment", as_json)


@bench_app.command("engine")
def bench_engine(
    ticks: Annotated[int, typer.Option(help="ticks")] = 1_000_000,
    symbols: Annotated[int, typer.Option(help="symbols")] = 100,
    micro_batch: Annotated[int, typer.Option(help="ticks per micro-batch")] = 50_000,
    repeat: Annotated[int, typer.Option(help="runs per figure (best kept)")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ticks/s through bars + indicators + features (beside a batch reference) and ingest → feature latency."""
    from marketpulse.bench_engine import bench_engine as run_bench

    _print_report(run_bench(ticks, symbols, repeat, micro_batch), "bench engine", as_json)


@bench_app.command("predict")
def bench_predict(
    model: Annotated[str, typer.Option(help="model kind")] = "lstm",
    window: Annotated[int, typer.Option(help="feature vectors per input window")] = 10,
    symbols: Annotated[int, typer.Option(help="symbols per inference batch and in the engine run")] = 100,
    repeat: Annotated[int, typer.Option(help="inference batches timed")] = 300,
    seconds: Annotated[float, typer.Option(help="measured engine run, seconds")] = 15.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Inference p50/p99 for a batch of symbols (beside the bare forward pass) and ingest → prediction latency."""
    from marketpulse.bench_predict import bench_predict as run_bench

    try:
        report = run_bench(model, window, symbols, repeat, seconds)
    except ImportError as e:
        _fail(f"bench predict needs the ml extra (pip install 'marketpulse[ml]'): {e}")
        return
    _print_report(report, "bench predict", as_json)


@evaluate_app.command("sentiment")
def evaluate_sentiment(
    data: Annotated[Path, typer.Option("--data", help="PhraseBank sentence@label, text,label CSV, or StockEmotions")],
    model: Annotated[str, typer.Option("--model", help="lexicon | transformer | ensemble | auto")] = "lexicon",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Accuracy, macro-F1, weighted F1, per-class precision/recall and the confusion matrix, beside a majority
    baseline. Texts that trained the transformer / ensemble are predicted out of fold (10-fold cross-validated),
    and the report says how many."""
    from marketpulse.sentiment.evaluate import run_evaluate

    try:
        report = run_evaluate(data, model)
    except MarketPulseError as e:
        _fail(str(e), 2 if isinstance(e, ConfigError) else 1)
        return
    _print_report(report, f"sentiment: {model} on {data.name}", as_json)


@app.command()
def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except ConfigError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except MarketPulseError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
