"""Meta-cognitive control for the fusion model: calibrated uncertainty (a deep ensemble and
temperature scaling), selective prediction, per-planet modality trust, and what to observe
next by expected information gain per unit of observing cost."""

from astrojax.config.sections import OBSERVATIONS, MetacognitionConfig
from astrojax.metacognition.acquisition import (
    POLICIES,
    Candidate,
    State,
    World,
    acquire,
    budget_curve,
    expected_gains,
    information_gain,
)
from astrojax.metacognition.calibration import (
    calibration_report,
    ensemble_probability,
    fit_temperature,
    plot_reliability,
    reliability_curve,
)
from astrojax.metacognition.ensemble import Ensemble, load_ensemble, train_ensemble
from astrojax.metacognition.selective import (
    accuracy_at_coverage,
    aurc,
    binary_entropy,
    disagreement,
    max_probability,
    risk_coverage,
    selective_report,
    threshold_for_coverage,
)
from astrojax.metacognition.trust import COLUMN_GROUPS, trust, trust_text

__all__ = [
    "COLUMN_GROUPS", "OBSERVATIONS", "POLICIES", "Candidate", "Ensemble", "MetacognitionConfig",
    "State", "World", "accuracy_at_coverage", "acquire", "aurc", "binary_entropy",
    "budget_curve", "calibration_report", "disagreement", "ensemble_probability",
    "expected_gains", "fit_temperature", "information_gain", "load_ensemble", "max_probability",
    "plot_reliability", "reliability_curve", "risk_coverage", "selective_report",
    "threshold_for_coverage", "train_ensemble", "trust", "trust_text",
]
