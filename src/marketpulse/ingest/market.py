"""Market-data sources: bars and ticks from CSV (plain or gzip), Parquet, in-memory frames, the StockNet
price layout and LOBSTER message files.

Columns are matched case-insensitively with common aliases (``timestamp|timestamp_utc|timestamp_et|time|
datetime|date``, ``symbol|ticker|stock``, ``Open/High/Low/Close/Volume``, ``price|last``, ``size|qty|quantity``).
A file without a symbol column takes ``symbol=`` or, failing that, its file name (``AAPL.csv`` → ``AAPL``,
``SPY_1min_2011-01.csv`` → ``SPY``). ``timestamp_utc`` is read as UTC and ``timestamp_et`` as US/Eastern
whatever the configured naive timezone. Bare dates are daily bars labelled at the 16:00 US/Eastern close.

The CSV hot path never builds a Python object per field: lines are located with numpy, rows with the wrong
number of fields are set aside (``bad_row``), and the rest is parsed by Arrow in one call; only when a cell
does not convert is the block re-read as text to mark exactly which cells failed.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from marketpulse.errors import SourceError
from marketpulse.ingest.base import MarketBatch, MarketKind, RowError
from marketpulse.ingest.timeparse import NAT, parse_timestamps

EXCHANGE_TZ = "America/New_York"
DAILY_CLOSE = pd.Timedelta(hours=16)

NUMERIC: dict[MarketKind, tuple[str, ...]] = {
    "bars": ("open", "high", "low", "close", "volume"),
    "ticks": ("price", "size"),
}
_ALIASES = {
    "ts": ("timestamp", "timestamp_utc", "timestamp_et", "time", "datetime", "date", "ts"),
    "symbol": ("symbol", "ticker", "stock"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "last"),
    "volume": ("volume", "vol", "v"),
    "price": ("price", "last", "trade_price"),
    "size": ("size", "qty", "quantity", "volume", "shares"),
}
_ZONE_OF_COLUMN = {"timestamp_utc": "UTC", "timestamp_et": EXCHANGE_TZ}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def symbol_from_path(path: Path) -> str:
    """``AAPL.csv.gz`` → ``AAPL``; ``SPY_1min_2011-01.csv`` → ``SPY``."""
    stem = path.name.split(".")[0]
    return re.split(r"[_\-\s]", stem)[0].upper()


def map_columns(header: list[str], kind: MarketKind, has_symbol: bool, where: str) -> dict[str, int]:
    """Canonical column → index in ``header``; :class:`SourceError` naming what is missing."""
    normed = [_norm(h) for h in header]
    wanted = ("ts", "symbol", *NUMERIC[kind])
    out: dict[str, int] = {}
    for canon in wanted:
        for alias in _ALIASES[canon]:
            if alias in normed and normed.index(alias) not in out.values():
                out[canon] = normed.index(alias)
                break
    missing = [c for c in wanted if c not in out and not (c == "symbol" and has_symbol)]
    if kind == "ticks" and missing == ["size"]:
        missing = []  # size is optional for ticks
    if missing:
        raise SourceError(
            f"{where}: missing column(s) {', '.join(missing)} for {kind}; header is {','.join(header)[:200]} "
            f"(expected timestamp,symbol,{','.join(NUMERIC[kind])})"
        )
    return out


def build_frame(
    table: pa.Table,
    cols: dict[str, int],
    kind: MarketKind,
    symbol: str | None,
    naive_tz: str,
    ts_name: str,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, str], int]:
    """Arrow table (numeric columns float64 or text) → canonical frame, bad-cell masks and reasons, interval."""
    n = table.num_rows
    bad: dict[str, np.ndarray] = {}
    reasons: dict[str, str] = {}
    tz = _ZONE_OF_COLUMN.get(_norm(ts_name), naive_tz)
    ts_col = table.column(cols["ts"])
    ns, date_only = parse_timestamps(ts_col, tz)
    interval = 60
    if date_only:
        interval = 86_400
        days = pd.DatetimeIndex(ns.view("datetime64[ns]"))
        close = (days.tz_localize(EXCHANGE_TZ) + DAILY_CLOSE).tz_convert("UTC")
        ns = np.where(ns == NAT, NAT, close.asi8)
    missing_ts = np.asarray(ts_col.is_null())
    if (ns == NAT).any():
        bad["ts"] = ns == NAT
        reasons["ts"] = "bad_timestamp"
        if missing_ts.all() or (missing_ts == bad["ts"]).all():
            reasons["ts"] = "missing_value"
    data: dict[str, Any] = {"ts": pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")}
    if "symbol" in cols:
        # dictionary-encoded: one Python string per distinct symbol, not per row
        enc = pc.dictionary_encode(table.column(cols["symbol"]).cast(pa.string())).combine_chunks()
        codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        categories = [str(c).strip() for c in enc.dictionary.to_pylist()]
        blank = np.array([c == "" for c in categories] + [True])  # the last slot stands for null (-1)
        empty = blank[codes]
        if empty.any():
            bad["symbol"] = empty
            reasons["symbol"] = "missing_value"
        uniq = list(dict.fromkeys(categories))
        remap = np.array([uniq.index(c) for c in categories] + [-1], dtype=np.int64)
        data["symbol"] = pd.Categorical.from_codes(remap[codes], categories=pd.Index(uniq))
    else:
        data["symbol"] = pd.Categorical.from_codes(np.zeros(n, dtype=np.int64), categories=pd.Index([symbol]))
    for name in NUMERIC[kind]:
        if name not in cols:
            data[name] = np.zeros(n)
            continue
        col = table.column(cols[name])
        if pa.types.is_floating(col.type) or pa.types.is_integer(col.type):
            values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            nulls = np.isnan(values)
            if nulls.any():
                bad[name], reasons[name] = nulls, "missing_value"
        else:
            text = col.cast(pa.string()).to_pandas()
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            nulls = np.isnan(values)
            if nulls.any():
                bad[name] = nulls
                blank = text.isna().to_numpy(bool) | (text.str.strip() == "").to_numpy(bool)
                reasons[name] = "missing_value" if blank[nulls].all() else "bad_number"
        data[name] = values
    return pd.DataFrame(data, copy=False), bad, reasons, interval


def _open_binary(path: Path) -> IO[bytes]:
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
        if magic == b"\x1f\x8b":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except FileNotFoundError as e:
        raise SourceError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise SourceError(f"{path}: is a directory, expected a file") from e
    except PermissionError as e:
        raise SourceError(f"{path}: permission denied") from e
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e


class CsvMarketSource:
    """Bars or ticks from a delimited text file, read in blocks of ``block_bytes``."""

    def __init__(
        self,
        path: Path,
        kind: MarketKind,
        *,
        symbol: str | None = None,
        naive_tz: str = "UTC",
        block_bytes: int = 8 << 20,
        delimiter: str = ",",
    ) -> None:
        self.path, self.kind, self.naive_tz = Path(path), kind, naive_tz
        self.name = str(path)
        self.block_bytes, self.delimiter = block_bytes, delimiter
        self._fh = _open_binary(self.path)
        try:
            raw_header = self._fh.readline()
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise SourceError(f"{path}: cannot read ({e})") from e
        try:
            header_text = raw_header.decode("utf-8-sig").strip()
        except UnicodeDecodeError as e:
            raise SourceError(f"{path}: not a UTF-8 text file") from e
        if not header_text:
            raise SourceError(f"{path}: empty file, expected a header line")
        self._setup(header_text, symbol, symbol_from_path(self.path))

    def _setup(self, header_text: str, symbol: str | None, fallback_symbol: str | None) -> None:
        if any(ch < " " and ch != "\t" for ch in header_text):  # NUL and other control bytes: binary data
            raise SourceError(f"{self.name}: not a text file (binary data in the header line)")
        self.header = [h.strip().strip('"') for h in header_text.split(self.delimiter)]
        has_symbol = symbol is not None or "symbol" not in [_norm(h) for h in self.header]
        self.symbol = symbol if symbol is not None else fallback_symbol
        self.cols = map_columns(self.header, self.kind, has_symbol, self.name)
        if "symbol" in self.cols and symbol is not None:
            del self.cols["symbol"]  # an explicit --symbol wins over the column

    @classmethod
    def for_lines(
        cls, name: str, header_text: str, kind: MarketKind, *, symbol: str | None = None, naive_tz: str = "UTC"
    ) -> CsvMarketSource:
        """A parser of CSV lines that arrive without a file (e.g. from a topic): call :meth:`parse_lines`."""
        self = cls.__new__(cls)
        self.path, self.kind, self.naive_tz, self.name = Path(name), kind, naive_tz, name
        self.block_bytes, self.delimiter = 8 << 20, ","
        self._setup(header_text, symbol, None)
        if self.symbol is None and "symbol" not in self.cols:
            raise SourceError(f"{name}: no symbol column in {header_text!r} and no symbol given")
        return self

    def parse_lines(self, lines: list[bytes], positions: np.ndarray) -> MarketBatch:
        """Parse raw CSV lines (no header); ``positions[i]`` is what dead letters report as line ``i``'s place."""
        block = b"\n".join(line.rstrip(b"\r\n") for line in lines) + b"\n"
        return self._parse_block(block, 0, np.asarray(positions, dtype=np.int64))

    def batches(self) -> Iterator[MarketBatch]:
        line_base = 2
        carry = b""
        with self._fh:
            while True:
                try:
                    chunk = self._fh.read(self.block_bytes)
                except (OSError, EOFError, zlib.error) as e:  # a corrupt or truncated gzip stream
                    raise SourceError(f"{self.path}: cannot read past line {line_base - 1} ({e})") from e
                data = carry + chunk
                if not chunk:
                    if data:
                        yield self._parse_block(data if data.endswith(b"\n") else data + b"\n", line_base)
                    return
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                block, carry = data[: cut + 1], data[cut + 1 :]
                batch = self._parse_block(block, line_base)
                line_base += block.count(b"\n")
                yield batch

    def _parse_block(self, block: bytes, line_base: int, line_of: np.ndarray | None = None) -> MarketBatch:
        buf = np.frombuffer(block, dtype=np.uint8)
        nl = np.flatnonzero(buf == 10)
        starts = np.concatenate(([0], nl[:-1] + 1))
        ends = nl.copy()
        cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
        ends[cr] -= 1
        delim = ord(self.delimiter)
        delims = np.flatnonzero(buf == delim)
        fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
        empty = ends == starts
        if b'"' in block and line_of is None:
            return self._parse_quoted(block, line_base)
        number = (lambda i: int(line_of[i])) if line_of is not None else (lambda i: line_base + int(i))
        good = ~empty & (fields == len(self.header))
        not_text = _not_utf8(block, starts, ends)  # Arrow refuses the whole block for one such row
        good &= ~not_text
        bad_rows = np.flatnonzero(~empty & ~good)
        errors = [
            RowError(
                line=number(i),
                field="*",
                reason="bad_row",
                record=block[starts[i] : ends[i]].decode("utf-8", "replace"),
                detail="not UTF-8 text" if not_text[i] else f"expected {len(self.header)} fields, got {int(fields[i])}",
            )
            for i in bad_rows
        ]
        good_idx = np.flatnonzero(good)
        if len(good_idx) == len(starts):
            clean = block
        else:
            keep = np.repeat(good, np.diff(np.concatenate(([0], nl + 1))))
            clean = buf[keep].tobytes()
        table = self._read_table(clean)
        frame, bad, reasons, interval = build_frame(
            table, self.cols, self.kind, self.symbol, self.naive_tz, self.header[self.cols["ts"]]
        )
        g_starts, g_ends = starts[good_idx], ends[good_idx]

        def raw_line(i: int) -> str:
            return block[g_starts[i] : g_ends[i]].decode("utf-8", "replace")

        return MarketBatch(
            source=self.name,
            kind=self.kind,
            frame=frame,
            lines=line_of[good_idx] if line_of is not None else good_idx + line_base,
            raw_line=raw_line,
            errors=errors,
            bad=bad,
            bad_reason=reasons,
            interval_s=interval,
        )

    def _read_table(self, clean: bytes) -> pa.Table:
        names = [f"c{i}" for i in range(len(self.header))]
        numeric = {f"c{self.cols[c]}": pa.float64() for c in NUMERIC[self.kind] if c in self.cols}
        text = {f"c{i}": pa.string() for i in range(len(self.header)) if f"c{i}" not in numeric}
        if not clean:  # every row of the block was blank or set aside: Arrow refuses an empty input
            return pa.table({n: pa.array([], numeric.get(n, pa.string())) for n in names})
        read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=max(len(clean), 1 << 20))
        parse = pacsv.ParseOptions(delimiter=self.delimiter)
        try:
            return pacsv.read_csv(
                io.BytesIO(clean),
                read_options=read,
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(column_types={**numeric, **text}),
            )
        except pa.ArrowInvalid:
            return pacsv.read_csv(
                io.BytesIO(clean),
                read_options=read,
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, strings_can_be_null=True
                ),
            )

    def _parse_quoted(self, block: bytes, line_base: int) -> MarketBatch:
        """Slow path for blocks with quoted fields: the csv module, one row at a time."""
        import csv

        rows: list[list[str]] = []
        lines: list[int] = []
        raws: list[str] = []
        errors: list[RowError] = []
        # split on \n only (as the fast path counts lines); a quoted field may span lines: a record starts on
        # the line after the previous record's last one (``reader.line_num``)
        text = [ln.removesuffix("\r") for ln in block.decode("utf-8", "replace").split("\n")[:-1]]
        reader = csv.reader(text, delimiter=self.delimiter)
        end = 0
        for record in reader:
            first, end = end, reader.line_num
            if not record:
                continue
            raw = "\n".join(text[first:end])
            if len(record) != len(self.header):
                errors.append(
                    RowError(
                        line_base + first, "*", "bad_row", raw, f"expected {len(self.header)} fields, got {len(record)}"
                    )
                )
                continue
            rows.append(record)
            lines.append(line_base + first)
            raws.append(raw)
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in self.header]
        table = pa.table({f"c{i}": pa.array(list(col), pa.string()) for i, col in enumerate(columns)})
        frame, bad, reasons, interval = build_frame(
            table, self.cols, self.kind, self.symbol, self.naive_tz, self.header[self.cols["ts"]]
        )
        return MarketBatch(
            self.name,
            self.kind,
            frame,
            np.asarray(lines, dtype=np.int64),
            raws.__getitem__,
            errors,
            bad,
            reasons,
            interval,
        )


def _not_utf8(block: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Rows of ``block`` that are not UTF-8 text (checked per row only when the block as a whole is not)."""
    bad = np.zeros(len(starts), dtype=bool)
    if block.isascii():
        return bad
    try:
        block.decode("utf-8")
        return bad
    except UnicodeDecodeError:
        pass
    for i, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        try:
            block[lo:hi].decode("utf-8")
        except UnicodeDecodeError:
            bad[i] = True
    return bad


class FrameMarketSource:
    """Bars or ticks from in-memory frames (simulators, Parquet, the demo); positions are row numbers."""

    def __init__(
        self,
        name: str,
        kind: MarketKind,
        frame: pd.DataFrame,
        *,
        symbol: str | None = None,
        naive_tz: str = "UTC",
        batch_rows: int = 65_536,
        synthetic: bool = False,
    ) -> None:
        self.name, self.kind, self.naive_tz = name, kind, naive_tz
        self.table = pa.Table.from_pandas(frame, preserve_index=False)
        self.header = list(self.table.column_names)
        has_symbol = symbol is not None
        self.cols = map_columns(self.header, kind, has_symbol, name)
        self.symbol = symbol
        self.batch_rows, self.synthetic = batch_rows, synthetic

    def batches(self) -> Iterator[MarketBatch]:
        for start in range(0, self.table.num_rows, self.batch_rows):
            part = self.table.slice(start, self.batch_rows)
            frame, bad, reasons, interval = build_frame(
                part, self.cols, self.kind, self.symbol, self.naive_tz, self.header[self.cols["ts"]]
            )
            yield MarketBatch(
                self.name,
                self.kind,
                frame,
                np.arange(start + 1, start + 1 + part.num_rows),
                _row_text(part),
                [],
                bad,
                reasons,
                interval,
                self.synthetic,
            )


def _row_text(table: pa.Table) -> Callable[[int], str]:
    def raw(i: int) -> str:
        row = table.slice(i, 1).to_pylist()[0]
        return ",".join("" if v is None else str(v) for v in row.values())

    return raw


class ParquetMarketSource(FrameMarketSource):
    """Bars or ticks from a Parquet file (read whole; positions are 1-based row numbers)."""

    def __init__(self, path: Path, kind: MarketKind, **kw: Any) -> None:
        import pyarrow.parquet as pq

        try:
            frame = pq.read_table(path).to_pandas()
        except FileNotFoundError as e:
            raise SourceError(f"{path}: no such file") from e
        except (OSError, pa.ArrowInvalid) as e:
            raise SourceError(f"{path}: not a readable Parquet file ({e})") from e
        if kw.get("symbol") is None and "symbol" not in [_norm(c) for c in frame.columns]:
            kw["symbol"] = symbol_from_path(Path(path))
        super().__init__(str(path), kind, frame, **kw)


class LobsterTickSource:
    """Executions (types 4 and 5) of a LOBSTER message file as ticks.

    The file name gives the symbol and date (``AMZN_2012-06-21_34200000_57600000_message_1.csv``); times are
    seconds after midnight US/Eastern. Order submissions, cancels and halts are not trades: they are counted in
    ``ignored`` and not emitted (they are not records of the tick stream).
    """

    kind: MarketKind = "ticks"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = str(path)
        m = re.match(r"([A-Za-z.]+)_(\d{4}-\d{2}-\d{2})_\d+_\d+_message_\d+", self.path.name)
        if not m:
            raise SourceError(f"{path}: not a LOBSTER message file name (TICKER_YYYY-MM-DD_start_end_message_N.csv)")
        self.symbol, self.day = m.group(1).upper(), pd.Timestamp(m.group(2))
        self.ignored = 0
        self._fh = _open_binary(self.path)

    def batches(self) -> Iterator[MarketBatch]:
        with self._fh:
            try:
                table = pacsv.read_csv(
                    self._fh,
                    read_options=pacsv.ReadOptions(column_names=["time", "type", "order_id", "size", "price", "dir"]),
                )
            except pa.ArrowInvalid as e:
                raise SourceError(f"{self.path}: not a LOBSTER message file ({str(e).splitlines()[0]})") from e
        msg_type = table.column("type").to_numpy()
        trade = np.isin(msg_type, (4, 5))
        self.ignored = int((~trade).sum())
        idx = np.flatnonzero(trade)
        secs = table.column("time").to_numpy()[idx]
        midnight = self.day.tz_localize(EXCHANGE_TZ).tz_convert("UTC").value
        ns = midnight + np.round(secs * 1e9).astype(np.int64)
        frame = pd.DataFrame(
            {
                "ts": pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"),
                "symbol": np.full(len(idx), self.symbol, dtype=object),
                "price": table.column("price").to_numpy()[idx] / 10_000.0,
                "size": table.column("size").to_numpy()[idx].astype(float),
            }
        )
        full = table.take(pa.array(idx))
        # each message is its own execution (one order filled against several resting orders gives equal
        # prints at one nanosecond): never "duplicates"
        yield MarketBatch(self.name, "ticks", frame, idx + 1, _row_text(full), distinct=True)


def stocknet_price_files(root: Path, symbols: list[str] | None = None) -> list[Path]:
    """``<root>/price/raw/<T>.csv[.gz]`` files of a StockNet folder (or of ``root`` itself if it is ``raw``)."""
    raw = root / "price" / "raw" if (root / "price" / "raw").is_dir() else root
    files = sorted(p for p in raw.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if symbols:
        wanted = {s.upper() for s in symbols}
        files = [p for p in files if symbol_from_path(p) in wanted]
    if not files:
        raise SourceError(f"{root}: no StockNet price files (price/raw/<TICKER>.csv[.gz])")
    return files
