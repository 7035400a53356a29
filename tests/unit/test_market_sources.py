"""Market-data sources: CSV (aliases, zones, gzip, CRLF, blocks, quoting), Parquet, LOBSTER, and the errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketpulse.config import ValidationConfig
from marketpulse.errors import SourceError
from marketpulse.ingest import open_source
from marketpulse.ingest.base import MarketBatch, RowError
from marketpulse.ingest.market import (
    CsvMarketSource,
    FrameMarketSource,
    LobsterTickSource,
    ParquetMarketSource,
    symbol_from_path,
)
from marketpulse.ingest.validate import MarketValidator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

BARS = """timestamp,symbol,open,high,low,close,volume
2024-01-02 14:31:00,AAPL,100.0,101.0,99.5,100.5,1000
2024-01-02 14:32:00,AAPL,100.5,101.0,100.0,100.7,1200
2024-01-02 14:33:00,AAPL,100.7,101.2,100.1,100.9,900
"""


def collect(source: object) -> tuple[pd.DataFrame, list[int], list[RowError], list[MarketBatch]]:
    """All batches of a source: the rows (one frame), their lines, the row errors, the batches."""
    batches: list[MarketBatch] = list(source.batches())  # type: ignore[attr-defined]
    for b in batches:
        assert b.read == len(b.frame) + len(b.errors)
        assert len(b.lines) == len(b.frame)
    frames = [b.frame.assign(symbol=b.frame["symbol"].astype(str)) for b in batches if len(b.frame)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    lines = [int(x) for b in batches for x in b.lines]
    errors = [e for b in batches for e in b.errors]
    return frame, lines, errors, batches


def raw_lines(batches: list[MarketBatch]) -> list[str]:
    return [b.raw_line(i) for b in batches for i in range(len(b.frame))]


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode())
    return path


# -- header aliases and time zones ----------------------------------------------------------------------------


def test_canonical_header(tmp_path: Path) -> None:
    frame, lines, errors, batches = collect(CsvMarketSource(write(tmp_path / "bars.csv", BARS), "bars"))
    assert errors == []
    assert lines == [2, 3, 4]
    assert frame["symbol"].tolist() == ["AAPL"] * 3
    assert frame["ts"].tolist() == [utc("2024-01-02 14:31"), utc("2024-01-02 14:32"), utc("2024-01-02 14:33")]
    assert frame["close"].tolist() == [100.5, 100.7, 100.9]
    assert frame["volume"].dtype == float
    assert batches[0].interval_s == 60
    assert raw_lines(batches)[0] == "2024-01-02 14:31:00,AAPL,100.0,101.0,99.5,100.5,1000"


def test_yahoo_daily_header_is_read_as_close_of_day_bars(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2012-09-04,95.108574,96.448570,94.928574,96.424286,87.121140,91973000\n"
        "2012-12-03,84.807144,84.941429,83.642860,83.741425,75.665977,91070000\n"
    )
    frame, lines, errors, batches = collect(open_source(write(tmp_path / "AAPL.csv", text), "bars"))
    assert errors == []
    assert lines == [2, 3]
    assert frame["symbol"].tolist() == ["AAPL", "AAPL"]  # from the file name
    # a bare date is a daily bar labelled at the 16:00 US/Eastern close (EDT in September, EST in December)
    assert frame["ts"].tolist() == [utc("2012-09-04 20:00"), utc("2012-12-03 21:00")]
    assert frame["close"].tolist() == [96.424286, 83.741425]  # Close, not Adj Close
    assert batches[0].interval_s == 86_400


def test_timestamp_utc_column_is_utc_whatever_the_naive_zone(tmp_path: Path) -> None:
    text = "timestamp_utc,open,high,low,close,volume\n2011-01-03 14:31:00,126.35,126.39,126.35,126.39,1579\n"
    src = CsvMarketSource(write(tmp_path / "SPY_1min_2011-01.csv", text), "bars", naive_tz="America/New_York")
    frame, *_ = collect(src)
    assert frame["ts"].tolist() == [utc("2011-01-03 14:31")]
    assert frame["symbol"].tolist() == ["SPY"]


def test_timestamp_et_column_is_us_eastern_whatever_the_naive_zone(tmp_path: Path) -> None:
    text = (
        "timestamp_et,open,high,low,close,volume\n"
        "2012-01-03 09:31:00,1,1,1,1,10\n"  # EST: UTC-5
        "2012-06-21 09:31:00,1,1,1,1,10\n"  # EDT: UTC-4
    )
    frame, *_ = collect(CsvMarketSource(write(tmp_path / "GOOG_1min.csv", text), "bars", naive_tz="UTC"))
    assert frame["ts"].tolist() == [utc("2012-01-03 14:31"), utc("2012-06-21 13:31")]


def test_naive_timestamps_use_the_configured_zone(tmp_path: Path) -> None:
    path = write(tmp_path / "bars.csv", BARS)
    frame, *_ = collect(CsvMarketSource(path, "bars", naive_tz="America/New_York"))
    assert frame["ts"].iloc[0] == utc("2024-01-02 19:31")


def test_other_aliases_and_case(tmp_path: Path) -> None:
    text = "Time,Ticker,Last,Qty\n2024-01-02T14:30:00Z,msft,370.1,100\n"
    frame, *_ = collect(CsvMarketSource(write(tmp_path / "t.csv", text), "ticks"))
    assert frame["price"].tolist() == [370.1]
    assert frame["size"].tolist() == [100.0]
    assert frame["ts"].tolist() == [utc("2024-01-02 14:30")]


def test_ticks_size_is_optional(tmp_path: Path) -> None:
    text = "timestamp,symbol,price\n2024-01-02T14:30:00Z,MSFT,370.1\n"
    frame, _, errors, _ = collect(CsvMarketSource(write(tmp_path / "t.csv", text), "ticks"))
    assert errors == []
    assert frame["size"].tolist() == [0.0]


# -- symbols ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("AAPL.csv", "AAPL"), ("aapl.csv.gz", "AAPL"), ("SPY_1min_2011-01.csv", "SPY"), ("BRK-A.csv", "BRK")],
)
def test_symbol_from_path(name: str, symbol: str) -> None:
    assert symbol_from_path(Path(name)) == symbol


def test_symbol_option_wins_over_file_name_and_column(tmp_path: Path) -> None:
    no_column = "timestamp,open,high,low,close,volume\n2024-01-02 14:31:00,1,1,1,1,1\n"
    frame, *_ = collect(CsvMarketSource(write(tmp_path / "SPY_1min.csv", no_column), "bars", symbol="QQQ"))
    assert frame["symbol"].tolist() == ["QQQ"]
    frame, *_ = collect(CsvMarketSource(write(tmp_path / "bars.csv", BARS), "bars", symbol="MSFT"))
    assert frame["symbol"].tolist() == ["MSFT"] * 3


def test_symbol_column_wins_over_file_name(tmp_path: Path) -> None:
    frame, *_ = collect(CsvMarketSource(write(tmp_path / "SPY.csv", BARS), "bars"))
    assert frame["symbol"].tolist() == ["AAPL"] * 3


# -- encodings and line endings ----------------------------------------------------------------------------------


def test_gzip_input_reads_like_plain(tmp_path: Path) -> None:
    plain = collect(CsvMarketSource(write(tmp_path / "bars.csv", BARS), "bars"))
    gz = tmp_path / "bars.csv.gz"
    gz.write_bytes(gzip.compress(BARS.encode()))
    zipped = collect(open_source(gz, "bars"))
    pd.testing.assert_frame_equal(plain[0], zipped[0])
    assert plain[1] == zipped[1]


def test_crlf_line_endings(tmp_path: Path) -> None:
    text = BARS + "2024-01-02 14:34:00,AAPL,1,1,1\n"  # one short row, to check errors too
    lf = collect(CsvMarketSource(write(tmp_path / "lf.csv", text), "bars"))
    crlf = collect(CsvMarketSource(write(tmp_path / "crlf.csv", text, "\r\n"), "bars"))
    pd.testing.assert_frame_equal(lf[0], crlf[0])
    assert lf[1] == crlf[1] == [2, 3, 4]
    assert [(e.line, e.reason, e.record) for e in crlf[2]] == [(5, "bad_row", "2024-01-02 14:34:00,AAPL,1,1,1")]
    assert raw_lines(crlf[3]) == raw_lines(lf[3])  # no stray \r in the recorded rows
    assert not any("\r" in r for r in raw_lines(crlf[3]))


def test_utf8_bom_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + BARS.encode())
    frame, *_ = collect(CsvMarketSource(path, "bars"))
    assert len(frame) == 3


def test_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    lines = BARS.splitlines()
    text = "\n".join([lines[0], lines[1], "", lines[2], "", "", lines[3]]) + "\n\n"
    _, got, errors, batches = collect(CsvMarketSource(write(tmp_path / "b.csv", text), "bars"))
    assert errors == []
    assert got == [2, 4, 7]  # real line numbers, blank lines not read
    assert sum(b.read for b in batches) == 3
    # CRLF blank lines too
    _frame, got, errors, batches = collect(CsvMarketSource(write(tmp_path / "c.csv", text, "\r\n"), "bars"))
    assert (got, errors) == ([2, 4, 7], [])


def test_last_line_without_newline(tmp_path: Path) -> None:
    _frame, lines, errors, _ = collect(CsvMarketSource(write(tmp_path / "b.csv", BARS.rstrip("\n")), "bars"))
    assert lines == [2, 3, 4]
    assert errors == []


def test_bad_field_counts_are_bad_rows_with_their_lines(tmp_path: Path) -> None:
    text = (
        "timestamp,symbol,price,size\n"
        "2024-01-02T14:30:00Z,MSFT,370.1,100\n"
        "2024-01-02T14:30:01Z,MSFT,370.2\n"  # 3 fields
        "2024-01-02T14:30:02Z,MSFT,370.3,100\n"
        "2024-01-02T14:30:03Z,MSFT,370.4,100,extra\n"  # 5 fields
        "\n"
        "garbage\n"  # 1 field
        "2024-01-02T14:30:05Z,MSFT,370.5,100\n"
    )
    frame, lines, errors, _ = collect(CsvMarketSource(write(tmp_path / "t.csv", text), "ticks"))
    assert lines == [2, 4, 8]
    assert frame["price"].tolist() == [370.1, 370.3, 370.5]
    assert [(e.line, e.field, e.reason) for e in errors] == [
        (3, "*", "bad_row"),
        (5, "*", "bad_row"),
        (7, "*", "bad_row"),
    ]
    assert errors[0].detail == "expected 4 fields, got 3"
    assert errors[1].record == "2024-01-02T14:30:03Z,MSFT,370.4,100,extra"


def test_a_row_that_is_not_utf8_is_a_bad_row_not_a_failed_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"timestamp,symbol,price,size\n"
        b"2024-01-02T14:30:00Z,MSFT,370.1,100\n"
        b"2024-01-02T14:30:01Z,\xff\xfeMS,370.2,100\n"
        b"2024-01-02T14:30:02Z,MSFT,370.3,100\n"
    )
    _frame, lines, errors, _ = collect(CsvMarketSource(path, "ticks"))
    assert lines == [2, 4]
    assert [(e.line, e.reason) for e in errors] == [(3, "bad_row")]
    assert "UTF-8" in errors[0].detail


def test_unparsable_cells_are_marked_per_cell(tmp_path: Path) -> None:
    text = (
        "timestamp,symbol,price,size\n"
        "2024-01-02T14:30:00Z,MSFT,370.1,100\n"
        "2024-01-02T14:30:01Z,MSFT,abc,100\n"
        "not a time,MSFT,370.3,100\n"
        "2024-01-02T14:30:03Z,,370.4,100\n"
    )
    _frame, lines, _errors, batches = collect(CsvMarketSource(write(tmp_path / "t.csv", text), "ticks"))
    (batch,) = batches
    assert lines == [2, 3, 4, 5]  # parsed rows stay in the frame; the validator dead-letters them
    assert batch.bad["price"].tolist() == [False, True, False, False]
    assert batch.bad_reason["price"] == "bad_number"
    assert batch.bad["ts"].tolist() == [False, False, True, False]
    assert batch.bad_reason["ts"] == "bad_timestamp"
    assert batch.bad["symbol"].tolist() == [False, False, False, True]
    assert batch.bad_reason["symbol"] == "missing_value"


# -- blocks ----------------------------------------------------------------------------------------------------


def _messy_ticks(n: int = 60) -> str:
    rows = ["timestamp,symbol,price,size"]
    for i in range(n):
        ts = f"2024-01-02T14:30:{i:02d}Z"
        if i % 11 == 3:
            rows.append(f"{ts},MSFT,{370 + i / 100:.2f}")  # short row
        elif i % 13 == 5:
            rows.append("")  # blank
        else:
            rows.append(f"{ts},{'MSFT' if i % 2 else 'AAPL'},{370 + i / 100:.2f},{i + 1}")
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("block_bytes", [1, 7, 40, 64, 100, 333])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_block_boundaries_change_nothing(tmp_path: Path, block_bytes: int, newline: str) -> None:
    path = write(tmp_path / "t.csv", _messy_ticks(), newline)
    whole = collect(CsvMarketSource(path, "ticks"))
    parts = collect(CsvMarketSource(path, "ticks", block_bytes=block_bytes))
    assert len(whole[3]) == 1
    assert len(parts[3]) > 1  # the boundary did fall inside the file
    pd.testing.assert_frame_equal(whole[0], parts[0])
    assert whole[1] == parts[1]
    assert [(e.line, e.reason, e.record) for e in whole[2]] == [(e.line, e.reason, e.record) for e in parts[2]]
    assert raw_lines(whole[3]) == raw_lines(parts[3])
    assert sum(b.read for b in whole[3]) == sum(b.read for b in parts[3]) == len(whole[0]) + len(whole[2])


def test_block_boundary_inside_a_gzip_file(tmp_path: Path) -> None:
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(_messy_ticks().encode()))
    whole = collect(CsvMarketSource(gz, "ticks"))
    parts = collect(CsvMarketSource(gz, "ticks", block_bytes=50))
    pd.testing.assert_frame_equal(whole[0], parts[0])
    assert whole[1] == parts[1]


# -- quoted CSV (slow path) ---------------------------------------------------------------------------------------


def test_quoted_csv(tmp_path: Path) -> None:
    text = (
        '"timestamp","symbol","price","size"\n'
        '"2024-01-02T14:30:00Z","MSFT","370.1","100"\n'
        '"2024-01-02T14:30:01Z","MSFT","370.2"\n'
        "\n"
        '"2024-01-02T14:30:02Z","MS,FT","370.3","100"\n'
    )
    frame, lines, errors, batches = collect(CsvMarketSource(write(tmp_path / "q.csv", text), "ticks"))
    assert lines == [2, 5]
    assert frame["symbol"].tolist() == ["MSFT", "MS,FT"]
    assert frame["price"].tolist() == [370.1, 370.3]
    assert [(e.line, e.reason) for e in errors] == [(3, "bad_row")]
    assert raw_lines(batches)[1] == '"2024-01-02T14:30:02Z","MS,FT","370.3","100"'


def test_quoted_csv_matches_the_fast_path(tmp_path: Path) -> None:
    plain = collect(CsvMarketSource(write(tmp_path / "p.csv", _messy_ticks()), "ticks"))
    quoted_text = _messy_ticks().replace(",MSFT,", ',"MSFT",')
    quoted = collect(CsvMarketSource(write(tmp_path / "q.csv", quoted_text, "\r\n"), "ticks"))
    pd.testing.assert_frame_equal(plain[0], quoted[0])
    assert plain[1] == quoted[1]
    assert [(e.line, e.reason) for e in plain[2]] == [(e.line, e.reason) for e in quoted[2]]


def test_quoted_field_spanning_lines_keeps_later_line_numbers(tmp_path: Path) -> None:
    text = (
        "timestamp,symbol,price,size\n"
        '2024-01-02T14:30:00Z,"MS\nFT",370.1,100\n'  # lines 2-3: one record
        "2024-01-02T14:30:01Z,MSFT,370.2,100\n"  # line 4
        "2024-01-02T14:30:02Z,MSFT,370.3\n"  # line 5: short
    )
    _frame, lines, errors, batches = collect(CsvMarketSource(write(tmp_path / "q.csv", text), "ticks"))
    assert lines == [2, 4]
    assert raw_lines(batches)[1] == "2024-01-02T14:30:01Z,MSFT,370.2,100"
    assert [(e.line, e.record) for e in errors] == [(5, "2024-01-02T14:30:02Z,MSFT,370.3")]


# -- Parquet and frames --------------------------------------------------------------------------------------------


def test_parquet_source(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(["2024-01-02 14:31", "2024-01-02 14:32"]).tz_localize("UTC"),
            "Open": [1.0, 2.0],
            "High": [1.5, 2.5],
            "Low": [0.5, 1.5],
            "Close": [1.2, 2.2],
            "Volume": [10, 20],
        }
    )
    path = tmp_path / "QQQ_2024.parquet"
    frame.to_parquet(path)
    src = open_source(path, "bars")
    assert isinstance(src, ParquetMarketSource)
    got, lines, errors, batches = collect(src)
    assert errors == []
    assert lines == [1, 2]  # row numbers
    assert got["symbol"].tolist() == ["QQQ", "QQQ"]  # from the file name
    assert got["ts"].tolist() == [utc("2024-01-02 14:31"), utc("2024-01-02 14:32")]
    assert got["close"].tolist() == [1.2, 2.2]
    assert "2024-01-02" in batches[0].raw_line(0)


def test_parquet_naive_times_and_symbol_column(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"time": pd.to_datetime(["2024-01-02 09:30"]), "ticker": ["ibm"], "price": [160.0], "size": [5]}
    )
    path = tmp_path / "ticks.parquet"
    frame.to_parquet(path)
    got, *_ = collect(ParquetMarketSource(path, "ticks", naive_tz="America/New_York"))
    assert got["ts"].tolist() == [utc("2024-01-02 14:30")]
    assert got["symbol"].tolist() == ["ibm"]


def test_frame_source_batches_and_positions() -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02 14:30", periods=5, freq="s", tz="UTC"),
            "symbol": "X",
            "price": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    got, lines, _errors, batches = collect(FrameMarketSource("mem", "ticks", frame, batch_rows=2, synthetic=True))
    assert [len(b.frame) for b in batches] == [2, 2, 1]
    assert lines == [1, 2, 3, 4, 5]
    assert all(b.synthetic for b in batches)
    assert got["price"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


# -- LOBSTER ------------------------------------------------------------------------------------------------------

LOBSTER = """34200.000000001,1,101,100,5794000,1
34200.015105074,4,15818974,4,5794000,1
34200.015105074,4,15818975,4,5794000,1
34200.05990197,3,15818974,300,5794000,1
34200.113246707,5,0,1,5795100,-1
34201.5,2,16113,50,5790000,-1
34260.25,7,0,0,-10000,0
34262.0,4,16114,200,5793500,-1
"""


def _lobster(tmp_path: Path, gz: bool = False) -> Path:
    name = "GOOG_2012-06-21_34200000_57600000_message_1.csv" + (".gz" if gz else "")
    path = tmp_path / name
    path.write_bytes(gzip.compress(LOBSTER.encode()) if gz else LOBSTER.encode())
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_lobster_executions_become_ticks(tmp_path: Path, gz: bool) -> None:
    src = open_source(_lobster(tmp_path, gz), "ticks")
    assert isinstance(src, LobsterTickSource)
    frame, lines, errors, batches = collect(src)
    assert errors == []
    assert lines == [2, 3, 5, 8]  # types 4 and 5 only, at their line in the file
    assert src.ignored == 4  # submission, cancel, delete, halt
    assert frame["symbol"].tolist() == ["GOOG"] * 4
    assert frame["price"].tolist() == [579.4, 579.4, 579.51, 579.35]  # USD x 10,000
    assert frame["size"].tolist() == [4.0, 4.0, 1.0, 200.0]
    # seconds after midnight US/Eastern; 21 June is EDT (UTC-4), nanoseconds kept
    assert frame["ts"].tolist() == [
        utc("2012-06-21 13:30:00.015105074"),
        utc("2012-06-21 13:30:00.015105074"),
        utc("2012-06-21 13:30:00.113246707"),
        utc("2012-06-21 13:31:02"),
    ]
    assert batches[0].raw_line(0).startswith("34200.015105074,4,15818974,4,5794000")


def test_lobster_equal_executions_are_not_duplicates(tmp_path: Path) -> None:
    """One order filled against two resting orders: two equal prints at one nanosecond, both real trades."""
    (batch,) = open_source(_lobster(tmp_path), "ticks").batches()  # type: ignore[union-attr]
    result = MarketValidator(ValidationConfig(), "ticks").validate(batch)
    assert result.deadletters == []
    assert result.accepted["seq"].tolist() == [0, 1, 0, 0]


def test_lobster_nanosecond_order_is_exact(tmp_path: Path) -> None:
    """Ticks 1 ns apart at 2012 epoch values must not be taken for out-of-order or duplicates (float64 rounding)."""
    rows = "".join(f"34200.{i:09d},4,{i},{1 + i % 3},{5794000 + 100 * (i % 2)},1\n" for i in range(1, 200))
    path = tmp_path / "GOOG_2012-06-21_34200000_57600000_message_1.csv"
    path.write_text(rows)
    (batch,) = open_source(path, "ticks").batches()  # type: ignore[union-attr]
    assert np.all(np.diff(batch.frame["ts"].to_numpy("datetime64[ns]").view(np.int64)) == 1)
    result = MarketValidator(ValidationConfig(), "ticks").validate(batch)
    assert result.reasons == {}
    assert result.n_accepted == 199


def test_lobster_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="LOBSTER message file holds ticks"):
        open_source(_lobster(tmp_path), "bars")
    bad_name = tmp_path / "GOOG_message_1.csv"
    bad_name.write_text(LOBSTER)
    with pytest.raises(SourceError, match="not a LOBSTER message file name"):
        LobsterTickSource(bad_name)
    garbage = tmp_path / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    garbage.write_text("hello,world\nthis is,not,lobster\n")
    with pytest.raises(SourceError, match="not a LOBSTER message file"):
        list(open_source(garbage, "ticks").batches())  # type: ignore[union-attr]


# -- SourceError: the input cannot be read at all ------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "nope.csv", "bars")
    with pytest.raises(SourceError, match="no such file"):
        CsvMarketSource(tmp_path / "nope.csv", "bars")


def test_directory_for_market_data(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        open_source(tmp_path, "bars")
    with pytest.raises(SourceError, match="is a directory"):
        CsvMarketSource(tmp_path, "ticks")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(SourceError, match="empty file"):
        open_source(tmp_path / "e.csv", "bars")
    (tmp_path / "blank.csv").write_bytes(b"\n\n")
    with pytest.raises(SourceError, match="empty file"):
        open_source(tmp_path / "blank.csv", "bars")


def test_header_only_file_reads_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", BARS.splitlines()[0] + "\n")
    _frame, lines, errors, batches = collect(CsvMarketSource(path, "bars"))
    assert (lines, errors, sum(b.read for b in batches)) == ([], [], 0)


def test_wrong_header_names_the_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "w.csv", "foo,bar,close\n1,2,3\n")
    with pytest.raises(SourceError, match=r"missing column\(s\) ts, open, high, low, volume for bars"):
        open_source(path, "bars")
    with pytest.raises(SourceError, match=r"missing column\(s\) ts, price"):
        open_source(path, "ticks")


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xff",
        b"\xff\xfe\x00\x01\x02garbage\n1,2,3\n",
        bytes(range(256)) * 4,  # valid UTF-8 up to the first newline, but control bytes
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00\n",  # a zip archive
    ],
    ids=["png", "binary", "bytes", "zip"],
)
def test_binary_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=r"not a (UTF-8 )?text file"):
        open_source(path, "bars")


def test_broken_gzip(tmp_path: Path) -> None:
    path = tmp_path / "b.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    with pytest.raises(SourceError, match="cannot read"):
        open_source(path, "bars")


def test_truncated_gzip_fails_with_a_source_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = "".join(f"2024-01-02T14:{i // 60:02d}:{i % 60:02d}Z,X,{rng.random():.6f},1\n" for i in range(3000))
    data = gzip.compress(("timestamp,symbol,price,size\n" + rows).encode())
    path = tmp_path / "t.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    src = CsvMarketSource(path, "ticks", block_bytes=1024)
    with pytest.raises(SourceError, match="cannot read past line"):
        list(src.batches())


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"definitely not parquet")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        open_source(path, "bars")


def test_unknown_text_formats(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "a,b,c\n1,2,3\n")
    with pytest.raises(SourceError, match="unknown posts format"):
        open_source(path, "posts")
    with pytest.raises(SourceError, match="unknown news format"):
        open_source(path, "news")
    with pytest.raises(SourceError, match="is a directory"):
        open_source(tmp_path, "news")
    with pytest.raises(SourceError, match=r"not a StockNet folder|no StockNet tweet files"):
        open_source(tmp_path, "posts")


def test_fixture_file_through_open_source() -> None:
    src = open_source(FIXTURES / "ticks_good.csv", "ticks")
    frame, lines, errors, _ = collect(src)
    assert errors == []
    assert lines == list(range(2, 10))
    assert sorted(set(frame["symbol"])) == ["AAPL", "MSFT"]
