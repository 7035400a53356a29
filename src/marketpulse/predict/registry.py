"""The model registry: trained models with their model cards, under ``<data_dir>/models``.

Layout: ``models/<name>/card.json`` (the model card: dataset and data range, feature names and schema hash,
hyper-parameters, seeds, dev/test figures with their baselines, created time, version) and
``models/<name>/seed_<k>/`` (one saved :class:`~marketpulse.predict.base.PriceModel` per seed). A registered model
predicts with the **mean of its seeds' probabilities** (:class:`SeedEnsemble`); evaluations also report each seed.

Registration is atomic: the entry is written in a temporary directory and renamed into place, so a reader (the
engine hot-reloading) never sees half a model. Re-registering a name replaces it and bumps ``version``.
:meth:`Registry.fingerprint` changes whenever an entry is replaced — what hot reload watches.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from marketpulse.errors import ConfigError
from marketpulse.predict.base import PriceModel, Samples

CARD = "card.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass
class SeedEnsemble:
    """The seeds of one registered model; probabilities are their mean."""

    name: str
    card: dict[str, Any]
    models: list[PriceModel]

    @property
    def version(self) -> str:
        return f"{self.name}@{self.card.get('version', 1)}"

    @property
    def schema(self) -> str:
        return str(self.card.get("schema", ""))

    @property
    def window(self) -> int:
        return int(self.card.get("window", 1))

    @property
    def features(self) -> list[str]:
        return list(self.card.get("features", []))

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.mean([m.predict_proba(X) for m in self.models], axis=0)

    def per_seed(self, samples: Samples) -> list[npt.NDArray[np.float64]]:
        from marketpulse.predict.models import predict_samples

        return [predict_samples(m, samples) for m in self.models]


class Registry:
    """Registered models under ``root`` (normally ``<data_dir>/models``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigError(f"model name {name!r}: use letters, digits, '_', '.', '-' (at most 100)")
        return self.root / name

    def register(self, name: str, models: Sequence[PriceModel], card: dict[str, Any]) -> Path:
        """Save ``models`` (one per seed) and ``card`` as ``name``; returns the entry's directory."""
        final = self._dir(name)
        previous = self.card(name).get("version", 0) if (final / CARD).is_file() else 0
        tmp = self.root / f".{name}.tmp-{time.time_ns()}"
        tmp.mkdir(parents=True)
        for k, model in enumerate(models):
            model.save(tmp / f"seed_{k}")
        full = {**card, "name": name, "version": int(previous) + 1, "seeds": len(models)}
        full.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
        (tmp / CARD).write_text(json.dumps(full, indent=2, sort_keys=True, default=_jsonable))
        old = None
        if final.exists():
            old = self.root / f".{name}.old-{time.time_ns()}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def names(self) -> list[str]:
        """Registered names, oldest first (by card creation time)."""
        if not self.root.is_dir():
            return []
        entries = [p for p in self.root.iterdir() if (p / CARD).is_file() and not p.name.startswith(".")]
        return [p.name for p in sorted(entries, key=lambda p: (self._created(p), p.name))]

    @staticmethod
    def _created(path: Path) -> str:
        try:
            return str(json.loads((path / CARD).read_text()).get("created", ""))
        except (OSError, ValueError):
            return ""

    def card(self, name: str) -> dict[str, Any]:
        path = self._dir(name) / CARD
        if not path.is_file():
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"no registered model {name!r} under {self.root} (registered: {known})")
        return dict(json.loads(path.read_text()))

    def load(self, name: str) -> SeedEnsemble:
        """The registered model ``name`` with all its seeds."""
        from marketpulse.predict.models import load_model

        card = self.card(name)
        base = self._dir(name)
        seeds = sorted(base.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
        if not seeds:
            raise ConfigError(f"registered model {name!r} has no saved seeds in {base}")
        return SeedEnsemble(name, card, [load_model(p) for p in seeds])

    def latest(self, schema: str | None = None) -> str | None:
        """The most recently registered name (with feature-schema hash ``schema`` when given), or None."""
        for name in reversed(self.names()):
            if schema is None or self.card(name).get("schema") == schema:
                return name
        return None

    def fingerprint(self, name: str) -> tuple[int, int]:
        """Changes whenever ``name`` is (re-)registered: (card mtime ns, inode)."""
        st = (self._dir(name) / CARD).stat()
        return st.st_mtime_ns, st.st_ino


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
