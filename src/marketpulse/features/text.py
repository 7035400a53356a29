"""The text stage: clean posts, find their tickers, drop what would skew sentiment (foreign, duplicate, spam).

:func:`process_posts` is a pure stage function over one micro-batch of :class:`~marketpulse.events.Post` (or
:class:`~marketpulse.events.Article`) with an explicit :class:`TextState` (the dedupe window and the counters); the
local engine and a Spark ``applyInPandasWithState`` call the very same function. Contract:

- it never raises on a post's content: empty, 1 MB, binary garbage, lone surrogates, bytes in place of ``str``,
  emoji only... every post comes back either kept (:class:`CleanPost`) or rejected with one reason of
  :data:`REASONS`, and ``state.counts`` counts both;
- time is event time only (``post.ts``): the dedupe window is ``window_s`` behind the newest post seen, never the
  wall clock, so replaying the same posts in the same order gives the same output;
- the state is mutated in place and returned (the caller keeps one per partition).

Steps per post: :func:`clean_text` (decode, surrogates, mojibake, HTML tags and entities, URLs, mentions, StockNet
placeholders, emoji mapped to VADER's words or removed, control characters, whitespace, a length cap) → link-only /
no-words → cashtag stuffing → language (:func:`detect_language`) → tickers (:func:`extract_tickers`, merged with the
post's own ``symbols``) → same-author repeats, exact duplicates (hash of the normalised text and its tickers) and near
duplicates (MinHash over character 5-grams with LSH banding, estimated Jaccard ≥ ``near_dup_threshold``, sharing a
ticker) inside the window → weight
``min(1 + log1p(engagement), weight_cap)``.

Ticker rules (false positives cost more than misses): a cashtag (``$AAPL``, ``$brk.b``) is always a ticker; a bare
upper-case ticker (``AAPL``) only when the symbol table marks it ``bare`` (3+ letters, not an English word, not an
abbreviation: never ``A, IT, ON, ALL, ARE``) and the text is not shouting in capitals; a company name or curated
alias (``Apple``, ``Bank of America``) with the capitals it is written with. See ``datasets/SYMBOLS_README.md``.
"""

from __future__ import annotations

import csv
import hashlib
import html
import math
import re
import unicodedata
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import SourceError
from marketpulse.events import Article, Post

Reason = Literal[
    "not_text", "binary", "empty", "link_only", "no_words", "cashtag_stuffing", "non_english", "no_symbol",
    "author_repeat", "duplicate", "near_duplicate",
]  # fmt: skip
REASONS: tuple[str, ...] = get_args(Reason)


class TextConfig(BaseModel):
    """Knobs of the text stage (a config section: frozen, unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_chars: int = Field(10_000, gt=0, description="cleaned text is cut to this length (at a space when possible)")
    emoji: Literal["map", "remove"] = Field("map", description="emoji → VADER's words for them, or removed")
    max_garbage_ratio: float = Field(0.1, ge=0, le=1, description="share of control/invalid characters → 'binary'")
    max_cashtags: int = Field(5, ge=1, description="more distinct cashtags than this → 'cashtag_stuffing'")
    min_ascii_letter_ratio: float = Field(0.7, ge=0, le=1, description="ASCII share of letters for English")
    keep_languages: tuple[str, ...] = Field(("en", "und"), description="'en', 'und' (no evidence), 'non_en'")
    require_symbol: bool = Field(True, description="reject posts with no ticker ('no_symbol')")
    unknown_cashtags: bool = Field(True, description="keep cashtags that are not in the symbol table")
    window_s: float = Field(3_600.0, gt=0, description="dedupe window behind the newest event time, seconds")
    window_size: int = Field(20_000, gt=0, description="at most this many texts in the dedupe window")
    dedupe_min_chars: int = Field(20, ge=0, description="shorter normalised texts are only checked per author")
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard of 5-grams for a near dup")
    weight_cap: float = Field(10.0, ge=1, description="engagement weight is min(1 + log1p(engagement), cap)")


# ---------------------------------------------------------------------------------------------- symbol table


@dataclass(frozen=True)
class _Alias:
    tokens: tuple[str, ...]  # lower case
    caps: tuple[bool, ...]  # token must start with a capital in the text
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class SymbolTable:
    """Known tickers, the ones safe to match without ``$``, and company names / aliases by first token."""

    known: frozenset[str]
    bare: frozenset[str]
    names: dict[str, tuple[_Alias, ...]]  # first lower-case token → aliases, longest first

    @classmethod
    def from_rows(cls, rows: Iterable[dict[str, str]]) -> SymbolTable:
        """Rows with ``symbol, name, aliases`` (``|``-separated) and ``bare`` (``1``/``0``), as in ``symbols.csv``."""
        known: set[str] = set()
        bare: set[str] = set()
        by_key: dict[tuple[str, ...], tuple[tuple[bool, ...], set[str]]] = {}
        for row in rows:
            symbol = norm_symbol(row.get("symbol") or "")
            if not symbol:
                continue
            known.add(symbol)
            if (row.get("bare") or "0").strip() == "1":
                bare.add(symbol)
            name = (row.get("name") or "").strip()
            forms = [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()]
            if len(_NAME_TOKEN.findall(name)) > 1:
                forms.append(name)  # a one-word name counts only when it is listed as an alias too
            for form in forms:
                raw = _NAME_TOKEN.findall(form)
                if not raw:
                    continue
                key = tuple(t.lower() for t in raw)
                caps = tuple(t[0].isupper() for t in raw)
                by_key.setdefault(key, (caps, set()))[1].add(symbol)
        index: dict[str, list[_Alias]] = {}
        for key, (caps, symbols) in by_key.items():
            index.setdefault(key[0], []).append(_Alias(key, caps, tuple(sorted(symbols))))
        names = {k: tuple(sorted(v, key=lambda a: -len(a.tokens))) for k, v in index.items()}
        return cls(frozenset(known), frozenset(bare), names)

    @classmethod
    def load(cls, path: Path | None = None, stocknet_table: Path | None = None) -> SymbolTable:
        """Read ``symbols.csv`` (the bundled one by default), plus a StockNet ``StockTable.tsv`` when given.

        :class:`~marketpulse.errors.SourceError` when a file cannot be read (the bundled one: a broken install).
        """
        try:
            if path is None:
                text = (files("marketpulse.datasets") / "symbols.csv").read_text(encoding="utf-8")
            else:
                text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            where = path or "marketpulse/datasets/symbols.csv (package data)"
            raise SourceError(f"{where}: cannot read the symbol table ({e.strerror or e})") from e
        rows = list(csv.DictReader(text.splitlines()))
        if stocknet_table is not None:
            with Path(stocknet_table).open(encoding="utf-8", newline="") as fh:
                rows += [{"symbol": r["Symbol"], "name": r["Company"]} for r in csv.DictReader(fh, delimiter="\t")]
        return cls.from_rows(rows)


@lru_cache(maxsize=1)
def default_symbols() -> SymbolTable:
    """The bundled symbol table, loaded once."""
    return SymbolTable.load()


def norm_symbol(raw: str) -> str:
    """``$brk-b`` → ``BRK.B``."""
    return raw.strip().lstrip("$").upper().replace("-", ".").replace("/", ".")


# ---------------------------------------------------------------------------------------------- cleaning

_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:ly|co|com|io|me|gl|to)/\S*", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{1,30}|\bAT_USER\b")
_PLACEHOLDER_URL = re.compile(r"\bURL\b")
_RT = re.compile(r"^(?:rt\b[\s:]*)+", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]{0,200})?/?>")
_GARBAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufff0-\uffff]")
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff\U0001f3fb-\U0001f3ff]")
_FLAGS = re.compile("[\U0001f1e6-\U0001f1ff]")
_EMOJI = re.compile(
    "[\u2190-\u21ff\u2300-\u23ff\u2460-\u24ff\u25a0-\u27bf\u2900-\u297f\u2b00-\u2bff\U0001f000-\U0001faff]"
)
_CASHTAG = re.compile(r"(?<![\w$])\$\$?([A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?)(?![A-Za-z0-9])")
_SPACED_CASHTAG = re.compile(r"(?<![\w$])\$ ([a-z]{2,6})\b")  # StockNet's tokenised "$ aapl"
_NAME_TOKEN = re.compile(r"[A-Za-z0-9&]+")
_BARE = re.compile(r"(?<![\w$.])[A-Z]{3,6}(?![\w])")
_LETTERS = re.compile(r"[A-Za-z]{2,}")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_NORM = re.compile(r"[^0-9a-z$]+")


@lru_cache(maxsize=1)
def _emoji_words() -> dict[str, str]:
    """VADER's own emoji → words table (single characters), so the scorer sees what VADER would."""
    lexicon = files("vaderSentiment") / "emoji_utf8_lexicon.txt"
    out: dict[str, str] = {}
    for line in lexicon.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and len(parts[0]) == 1 and _EMOJI.match(parts[0]):
            out[parts[0]] = parts[1].strip()
    return out


@dataclass
class Cleaned:
    """What :func:`clean_text` found: the text, or why there is none."""

    text: str = ""
    reject: Reason | None = None
    urls: int = 0
    truncated: bool = False


def _to_str(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        for encoding in ("utf-8", "cp1252"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
        return raw.decode("latin-1")
    return None


def _fix_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: pair what pairs, replace the rest
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "Ã" in text or "â€" in text or "Â" in text:  # UTF-8 read as cp1252/latin-1
        for encoding in ("cp1252", "latin-1"):
            try:
                fixed = text.encode(encoding).decode("utf-8")
            except UnicodeError:
                continue
            if len(fixed) < len(text):
                return fixed
    return text


def clean_text(value: object, config: TextConfig | None = None) -> Cleaned:
    """Clean one text; never raises. ``reject`` is ``not_text`` (not a string/bytes) or ``binary`` (garbage)."""
    cfg = config or _DEFAULT_CONFIG
    text = _to_str(value)
    if text is None:
        return Cleaned(reject="not_text")
    out = Cleaned()
    if len(text) > 2 * cfg.max_chars:
        text, out.truncated = text[: 2 * cfg.max_chars], True
    if not text.isascii():
        text = _fix_unicode(text)
    if text:
        garbage = len(_GARBAGE.findall(text))
        if garbage >= 3 and garbage > cfg.max_garbage_ratio * len(text):
            out.reject = "binary"
            return out
        if garbage:
            text = _GARBAGE.sub(" ", text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text, out.urls = _URL.subn(" ", text)
    if "URL" in text:
        text, n = _PLACEHOLDER_URL.subn(" ", text)
        out.urls += n
    text = _MENTION.sub(" ", text)
    if not text.isascii():
        text = _INVISIBLE.sub("", _FLAGS.sub(" ", text))
        if cfg.emoji == "map":
            words = _emoji_words()
            text = _EMOJI.sub(lambda m: f" {words.get(m.group(), '')} ", text)
        else:
            text = _EMOJI.sub(" ", text)
        text = unicodedata.normalize("NFKC", text)
        if not text.isascii():
            text = _GARBAGE.sub(" ", text)
    text = _RT.sub("", " ".join(text.split()))
    if len(text) > cfg.max_chars:
        cut = text.rfind(" ", cfg.max_chars - 200, cfg.max_chars)
        text, out.truncated = text[: cut if cut > 0 else cfg.max_chars], True
    out.text = text
    return out


# ---------------------------------------------------------------------------------------------- language

_EN_STOP = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or other
    our out over own same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why will with would you
    your yours i'm it's don't can't won't""".split()  # noqa: SIM905
)
_FOREIGN_STOP = frozenset(
    """el los las del que y es una por para pero como más muy también esta este sus le les des du et est
    une pour dans pas qui sur au aux avec ce cette sont être ont der das und ist nicht mit ein eine zu auf
    für von sich auch wird werden bei nach il di che della gli delle sono è dei nel het een niet ook maar wordt
    zijn og ikke er på af det som jeg och att inte är för av não uma são mais está""".split()  # noqa: SIM905
)


def detect_language(text: str, min_ascii_letter_ratio: float = 0.7) -> str:
    """``en``, ``non_en`` or ``und`` (no evidence either way) by a cheap heuristic, no model.

    Non-English when under ``min_ascii_letter_ratio`` of the letters are ASCII (Cyrillic, CJK, Arabic...) or when
    two or more function words of Spanish/French/German/Italian/Dutch/Nordic/Portuguese outnumber English ones;
    English when at least one English function word is there and they are not outnumbered; else ``und``
    (headlines such as "Apple beats estimates").
    """
    if not text.isascii():
        letters = sum(1 for c in text if c.isalpha())
        if letters and sum(1 for c in text if c.isalpha() and c.isascii()) < min_ascii_letter_ratio * letters:
            return "non_en"
    words = _WORD.findall(text.lower())
    en = sum(1 for w in words if w in _EN_STOP)
    foreign = sum(1 for w in words if w in _FOREIGN_STOP)
    if foreign >= 2 and foreign > en:
        return "non_en"
    return "en" if en else "und"


# ---------------------------------------------------------------------------------------------- tickers


def extract_tickers(
    text: str, table: SymbolTable | None = None, *, unknown_cashtags: bool = True
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(cashtags, tickers)``: the distinct cashtags written, and every ticker found (cashtags included), in order.

    Cashtags are upper-cased and normalised (``$brk-b`` → ``BRK.B``); unknown ones are kept when
    ``unknown_cashtags``. Bare tickers and company names follow the rules in the module docstring.
    """
    tbl = table or default_symbols()
    found: dict[str, None] = {}
    cashtags: dict[str, None] = {}
    if "$" in text:
        for m in _CASHTAG.finditer(text):
            symbol = norm_symbol(m.group(1))
            cashtags[symbol] = None
            if unknown_cashtags or symbol in tbl.known:
                found[symbol] = None
        for m in _SPACED_CASHTAG.finditer(text):
            symbol = m.group(1).upper()
            if symbol in tbl.known:
                cashtags[symbol] = None
                found[symbol] = None
    bare = [m.group() for m in _BARE.finditer(text) if m.group() in tbl.bare]
    if bare:
        words = _LETTERS.findall(text)
        if len(words) < 4 or sum(1 for w in words if w.isupper()) <= 0.6 * len(words):  # not shouting
            found.update(dict.fromkeys(bare))
    raw = _NAME_TOKEN.findall(text)
    low = [t.lower() for t in raw]
    names = tbl.names
    i, n = 0, len(low)
    while i < n:
        step = 1
        for alias in names.get(low[i], ()):
            k = len(alias.tokens)
            if tuple(low[i : i + k]) == alias.tokens and all(
                not need or raw[i + j][0].isupper() or raw[i + j][0].isdigit() for j, need in enumerate(alias.caps)
            ):
                for symbol in alias.symbols:
                    found[symbol] = None
                step = k
                break
        i += step
    return tuple(cashtags), tuple(found)


# ---------------------------------------------------------------------------------------------- dedupe window

_PERMS = 32
_BANDS = 8
_ROWS = _PERMS // _BANDS
_rng = np.random.default_rng(20_240_601)
_MUL = _rng.integers(1, 2**63, size=(_PERMS, 1), dtype=np.uint64) | np.uint64(1)
_ADD = _rng.integers(0, 2**63, size=(_PERMS, 1), dtype=np.uint64)
_S32, _S24, _S16, _S8 = (np.uint64(k) for k in (32, 24, 16, 8))


def normalise(text: str) -> str:
    """Lower case, everything but letters, digits and ``$`` as one space: the dedupe key's text."""
    return _NORM.sub(" ", text.lower()).strip()


def minhash(norm: str) -> np.ndarray:
    """32 MinHash values (uint32) of the text's 5-byte shingles (multiply-shift hashing, fixed seed).

    A shingle's id is its 5 bytes packed in an integer (no collisions); the minimum over repeated shingles is
    the minimum over distinct ones, so no de-duplication is needed.
    """
    raw = norm.encode("utf-8", "replace")
    if len(raw) < 5:
        raw = raw.ljust(5, b"\0")
    d = np.frombuffer(raw, dtype=np.uint8).astype(np.uint64)
    ids = (d[:-4] << _S32) | (d[1:-3] << _S24) | (d[2:-2] << _S16) | (d[3:-1] << _S8) | d[4:]
    hashed = (_MUL * ids[np.newaxis, :] + _ADD) >> _S32
    return hashed.min(axis=1).astype(np.uint32)


@dataclass
class _Entry:
    ts_ns: int
    key: bytes
    author: str | None
    sig: np.ndarray | None
    bands: tuple[bytes, ...]
    symbols: frozenset[str]


@dataclass
class TextState:
    """The text stage's state for one partition: the dedupe window (bounded by time and size) and counters.

    ``counts`` holds ``seen``, ``kept``, ``truncated`` and one count per rejection reason.
    """

    counts: Counter[str] = field(default_factory=Counter)
    newest_ns: int = 0
    _next: int = 0
    _order: deque[int] = field(default_factory=deque)
    _entries: dict[int, _Entry] = field(default_factory=dict)
    _exact: dict[bytes, int] = field(default_factory=dict)
    _buckets: dict[bytes, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, window_ns: int, size: int) -> None:
        horizon = self.newest_ns - window_ns
        while self._order and (len(self._order) >= size or self._entries[self._order[0]].ts_ns < horizon):
            eid = self._order.popleft()
            entry = self._entries.pop(eid)
            if self._exact.get(entry.key) == eid:
                del self._exact[entry.key]
            for band in entry.bands:
                bucket = self._buckets.get(band)
                if bucket is not None:
                    bucket.remove(eid)
                    if not bucket:
                        del self._buckets[band]

    def check(
        self, norm: str, author: str | None, ts_ns: int, cfg: TextConfig, symbols: Sequence[str] = ()
    ) -> Reason | None:
        """Judge one normalised text against the window; remember it when it is new. Never raises.

        Duplicates are judged per ticker: the same words about other tickers ("Operating profit rose to EUR 13.1
        mn" of two companies) are different news; a near duplicate must share a ticker with the earlier text.
        """
        self.newest_ns = max(self.newest_ns, ts_ns)
        self._evict(int(cfg.window_s * 1e9), cfg.window_size)
        tickers = frozenset(symbols)
        scoped = norm + "\x00" + ",".join(sorted(tickers))
        key = hashlib.blake2b(scoped.encode("utf-8", "replace"), digest_size=8).digest()
        short = len(norm) < cfg.dedupe_min_chars
        if short and author is None:
            return None  # nothing to judge an anonymous short text by
        if short:  # only an author repeating themselves is judged: short texts coincide innocently
            key = hashlib.blake2b(f"{author}\x00".encode("utf-8", "replace") + key, digest_size=8).digest()
        if key in self._exact:
            same = short or (author is not None and self._entries[self._exact[key]].author == author)
            return "author_repeat" if same else "duplicate"
        sig: np.ndarray | None = None
        bands: tuple[bytes, ...] = ()
        if not short:
            sig = minhash(norm)
            bands = tuple(bytes([b]) + sig[b * _ROWS : (b + 1) * _ROWS].tobytes() for b in range(_BANDS))
            seen: set[int] = set()
            for band in bands:
                for eid in self._buckets.get(band, ()):
                    if eid in seen:
                        continue
                    seen.add(eid)
                    other = self._entries[eid]
                    if (
                        other.sig is not None
                        and (other.symbols & tickers or not (tickers or other.symbols))
                        and np.count_nonzero(other.sig == sig) >= cfg.near_dup_threshold * _PERMS
                    ):
                        same = author is not None and other.author == author
                        return "author_repeat" if same else "near_duplicate"
        eid, self._next = self._next, self._next + 1
        self._entries[eid] = _Entry(ts_ns, key, author, sig, bands, tickers)
        self._order.append(eid)
        self._exact[key] = eid
        for band in bands:
            self._buckets.setdefault(band, []).append(eid)
        return None


# ---------------------------------------------------------------------------------------------- the stage


@dataclass(frozen=True, slots=True)
class CleanPost:
    """A kept post: the original id/time/source, the cleaned text, its tickers, language flag and weight."""

    id: str
    ts: datetime
    source: str
    text: str
    symbols: tuple[str, ...]
    lang: str
    weight: float
    author: str | None = None
    kind: Literal["post", "article"] = "post"
    ingest_ns: int = 0
    truncated: bool = False


def engagement_weight(engagement: object, cap: float = 10.0) -> float:
    """``min(1 + log1p(engagement), cap)``; 1 for a missing, negative or non-numeric engagement."""
    try:
        value = float(engagement)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 1.0
    if math.isnan(value) or value <= 0:
        return 1.0
    return min(1.0 + math.log1p(value), cap) if math.isfinite(value) else cap


def _post_text(post: Post) -> object:
    title = post.title if isinstance(post.title, str) else ""
    body = post.text
    if title and isinstance(body, str) and title not in body:
        return f"{title}. {body}" if body else title
    return body if body or not title else title


def _ts_ns(ts: object) -> int:
    try:
        return int(ts.timestamp() * 1e9)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError, OverflowError):
        return 0


def process_posts(
    posts: Sequence[Post],
    state: TextState | None = None,
    config: TextConfig | None = None,
    symbols: SymbolTable | None = None,
) -> tuple[list[CleanPost], list[tuple[Post, str]], TextState]:
    """Clean, tag and filter one micro-batch of posts in order; returns ``(kept, rejected, state)``.

    ``rejected`` pairs each dropped post with its reason (one of :data:`REASONS`). Never raises on content; the
    state (a new one when ``None``) is updated in place and returned.
    """
    cfg = config or _DEFAULT_CONFIG
    st = state if state is not None else TextState()
    tbl = symbols or default_symbols()
    kept: list[CleanPost] = []
    rejected: list[tuple[Post, str]] = []
    for post in posts:
        st.counts["seen"] += 1
        reason, clean = _judge(post, st, cfg, tbl)
        if reason is not None:
            st.counts[reason] += 1
            rejected.append((post, reason))
            continue
        assert clean is not None
        st.counts["kept"] += 1
        st.counts["truncated"] += clean.truncated
        kept.append(clean)
    return kept, rejected, st


def _judge(post: Post, st: TextState, cfg: TextConfig, tbl: SymbolTable) -> tuple[Reason | None, CleanPost | None]:
    cleaned = clean_text(_post_text(post), cfg)
    if cleaned.reject:
        return cleaned.reject, None
    text = cleaned.text
    cashtags, found = extract_tickers(text, tbl, unknown_cashtags=cfg.unknown_cashtags)
    content = _CASHTAG.sub(" ", text)
    if not any(c.isalpha() for c in content):
        if not text:
            return ("link_only" if cleaned.urls else "empty"), None
        return ("link_only" if cleaned.urls else "no_words"), None
    if len(cashtags) > cfg.max_cashtags:
        return "cashtag_stuffing", None
    lang = detect_language(content, cfg.min_ascii_letter_ratio)
    if lang not in cfg.keep_languages:
        return "non_english", None
    own = post.symbols if isinstance(post.symbols, tuple | list) else ()
    merged = tuple(dict.fromkeys([*(norm_symbol(s) for s in own if isinstance(s, str) and s.strip()), *found]))
    if cfg.require_symbol and not merged:
        return "no_symbol", None
    author = post.author if isinstance(post.author, str) else None
    verdict = st.check(normalise(text), author, _ts_ns(post.ts), cfg, merged)
    if verdict is not None:
        return verdict, None
    return None, CleanPost(
        id=str(post.id),
        ts=post.ts,
        source=str(post.source),
        text=text,
        symbols=merged,
        lang=lang,
        weight=engagement_weight(post.engagement, cfg.weight_cap),
        author=author,
        kind="article" if isinstance(post, Article) else "post",
        ingest_ns=post.ingest_ns if isinstance(post.ingest_ns, int) else 0,
        truncated=cleaned.truncated,
    )


_DEFAULT_CONFIG = TextConfig()
