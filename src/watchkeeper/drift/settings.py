"""Drift settings: methods and thresholds per feature (the ``drift:`` section of the YAML)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.drift.stats import (
    DEFAULT_ALPHA,
    MIN_SAMPLES,
    DriftConfigError,
    MethodChoice,
    choose,
    method_overrides,
)


@dataclass(frozen=True)
class DriftSettings:
    """The ``drift:`` section of the server's YAML configuration.

    ``features`` sets a method and/or thresholds per feature name for every model;
    ``models`` does the same for one model (it wins over ``features``).
    """

    alpha: float = DEFAULT_ALPHA
    min_samples: int = MIN_SAMPLES
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, doc: Mapping[str, Any] | None) -> DriftSettings:
        """Validate the ``drift:`` mapping; errors name the key at fault."""
        doc = dict(doc or {})
        unknown = set(doc) - {"alpha", "min_samples", "features", "models"}
        if unknown:
            raise DriftConfigError(
                f"drift: unknown key(s) {sorted(unknown)}; known: alpha, min_samples,"
                " features, models"
            )
        alpha = float(doc.get("alpha", DEFAULT_ALPHA))
        if not 0 < alpha < 1:
            raise DriftConfigError(f"drift.alpha must be between 0 and 1; got {alpha}")
        min_samples = int(doc.get("min_samples", MIN_SAMPLES))
        if min_samples < 1:
            raise DriftConfigError("drift.min_samples must be at least 1")
        features = method_overrides(doc.get("features"))
        models_doc = doc.get("models") or {}
        if not isinstance(models_doc, Mapping):
            raise DriftConfigError("drift.models must map model names to feature settings")
        models = {str(k): method_overrides(v) for k, v in models_doc.items()}
        for where, spec in [("drift.features", features)] + [
            (f"drift.models.{k}", v) for k, v in models.items()
        ]:
            for name, s in spec.items():
                try:  # the method must exist and the thresholds be ordered, whatever the kind
                    kinds = ["number", "string"] if "method" in s else ["number"]
                    errors = []
                    for kind in kinds:
                        try:
                            choose(kind, s.get("method"), s.get("warn"), s.get("drift"))
                            break
                        except DriftConfigError as exc:
                            errors.append(exc)
                    else:
                        raise errors[0]
                except DriftConfigError as exc:
                    raise DriftConfigError(f"{where}.{name}: {exc}") from None
        return cls(alpha, min_samples, features, models)

    def enabled(self, model: str, feature: str) -> bool:
        """False for features switched off (``enabled: false``), e.g. time-of-day inputs
        that differ between a short window and a day-long reference by design."""
        spec = dict(self.features.get(feature, {}))
        spec.update(self.models.get(model, {}).get(feature, {}))
        return bool(spec.get("enabled", True))

    def choice(self, model: str, feature: str, kind: str, method: str | None) -> MethodChoice:
        spec = dict(self.features.get(feature, {}))
        spec.update(self.models.get(model, {}).get(feature, {}))
        if method is not None:  # the request's method wins where it applies to the kind
            try:
                choose(kind, method)
                spec = {"method": method}
            except DriftConfigError:
                pass
        return choose(kind, spec.get("method"), spec.get("warn"), spec.get("drift"))
