"""Online inference: each new feature vector → a :class:`~marketpulse.events.Prediction` from a registered model.

:class:`OnlinePredictor` keeps, per symbol, the last ``window`` feature vectors (the model's window) and predicts
for every new vector whose window is complete and finite, all symbols of a micro-batch in one call. The model is
the pinned registry name, or the latest registered model whose feature-schema hash equals the engine's
(:func:`marketpulse.features.market.schema_hash`): a model of another schema is never fed these vectors. Every
``reload_s`` seconds the registry is checked and a new or replaced model is loaded (hot reload) — a model that
fails to load is logged and the previous one kept. With a ``fallback`` registry (the bundled demo model,
:func:`bundled_registry`), its model is used while the registry has no compatible one; a model registered later
takes over at the next check.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.errors import MarketPulseError
from marketpulse.events import Prediction
from marketpulse.predict.registry import Registry, SeedEnsemble

log = logging.getLogger(__name__)
BUNDLED = Path(__file__).resolve().parent / "assets" / "models"
"""A read-only registry shipped in the package: the demo's SPY 1-minute model (see ``assets/models/README.md``)."""


def bundled_registry() -> Registry:
    """The registry of models shipped with the package."""
    return Registry(BUNDLED)


class OnlinePredictor:
    """Feature rows in, predictions out (single-threaded; state per symbol)."""

    def __init__(
        self,
        registry: Registry,
        schema: str,
        names: tuple[str, ...],
        pinned: str | None = None,
        reload_s: float = 2.0,
        fallback: Registry | None = None,
    ) -> None:
        self.registry, self.schema, self.names, self.pinned, self.reload_s = registry, schema, names, pinned, reload_s
        self.fallback = fallback
        self.model: SeedEnsemble | None = None
        self._fingerprint: Any = None
        self._checked = -float("inf")
        self._columns: np.ndarray = np.empty(0, dtype=np.int64)
        self._history: dict[str, np.ndarray] = {}
        self.reloads = 0

    # -- model ------------------------------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        """Load the pinned or latest compatible model if it changed since the last check (at most every
        ``reload_s`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < self.reload_s:
            return
        self._checked = now
        try:
            source, name = self.registry, self.pinned or self.registry.latest(self.schema)
            if name is None and self.fallback is not None:
                source, name = self.fallback, self.fallback.latest(self.schema)
            if name is None:
                return
            fingerprint = (str(source.root), name, source.fingerprint(name))
            if fingerprint == self._fingerprint:
                return
            model = source.load(name)
        except (MarketPulseError, OSError, ValueError, ImportError) as e:
            log.warning("prediction model not (re)loaded: %s", e)
            return
        if model.schema != self.schema:
            log.warning("model %s has feature schema %s, the engine %s: not used", name, model.schema, self.schema)
            self._fingerprint = fingerprint
            return
        missing = [f for f in model.features if f not in self.names]
        if missing:
            log.warning("model %s needs features %s the engine does not compute: not used", name, missing)
            self._fingerprint = fingerprint
            return
        self.model, self._fingerprint = model, fingerprint
        self._columns = np.array([self.names.index(f) for f in model.features], dtype=np.int64)
        self._history.clear()
        self.reloads += 1
        log.info("prediction model %s loaded", model.version)

    # -- inference --------------------------------------------------------------------------------------------
    def update(self, rows: pd.DataFrame, interval_s: int = 60, ingest_ns: int = 0) -> list[Prediction]:
        """Predictions for the feature rows ``rows`` of bars of ``interval_s`` (columns ``symbol, ts, *names``; time
        order per symbol). Rows of another bar interval than the model was trained on are ignored."""
        self.refresh()
        model = self.model
        if model is None or rows.empty or interval_s != int(model.card.get("interval_s", 60)):
            return []
        w = model.window
        values = rows[list(self.names)].to_numpy(np.float64)[:, self._columns]
        ts_all = rows["ts"].to_numpy("datetime64[ns]").view(np.int64)
        windows, meta = [], []
        for symbol, idx in rows.groupby("symbol", sort=False, observed=True).indices.items():
            sym = str(symbol)
            hist = np.concatenate((self._history.get(sym, values[:0]), values[idx]))
            start = max(0, len(hist) - len(idx))
            for j in range(max(start, w - 1), len(hist)):
                win = hist[j - w + 1 : j + 1]
                if np.isfinite(win).all():
                    windows.append(win)
                    meta.append((sym, int(ts_all[idx[j - start]])))
            self._history[sym] = hist[-(w - 1) :] if w > 1 else hist[:0]
        if not windows:
            return []
        proba = model.predict_proba(np.stack(windows).astype(np.float32))
        horizon_s = int(model.card.get("horizon_ns", 0) // 1_000_000_000)
        move = float(model.card.get("typical_move", 0.0))
        out = []
        for (sym, ts), p in zip(meta, proba, strict=True):
            up, down = float(p[1]), float(p[0])
            out.append(
                Prediction(
                    ts=pd.Timestamp(ts, tz="UTC").to_pydatetime(),
                    ingest_ns=ingest_ns,
                    symbol=sym,
                    model=model.name,
                    horizon_s=horizon_s,
                    p_up=up,
                    p_down=down,
                    expected_move=(up - down) * move,
                    confidence=abs(up - down),
                    version=model.version,
                )
            )
        return out


def build_predictor(settings: Any) -> OnlinePredictor | None:
    """The engine's predictor from :class:`~marketpulse.config.Settings` (``predict`` section), or None if off."""
    if not settings.predict.enabled:
        return None
    from marketpulse.features.market import NAMES, schema_hash

    return OnlinePredictor(
        Registry(settings.data_dir / "models"),
        schema_hash(),
        NAMES,
        settings.predict.model,
        settings.predict.reload_s,
        fallback=bundled_registry() if settings.predict.bundled else None,
    )
