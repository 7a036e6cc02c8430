"""How every model is measured, and what against: metrics, probes and closed-form baselines.

- ``metrics``: every metric, from summed statistics (accuracy and balanced accuracy, R^2,
  ROC AUC and average precision, expected calibration error, language-model loss, perplexity
  and bits per byte), in the two halves the train loop needs: sums per batch inside jit, the
  metric from their totals.
- ``probes``: linear probes of frozen features (logistic regression for classes, ridge with a
  leave-one-out penalty for values), fitted on train data, scored held out.
- ``ngram``: the Witten-Bell n-gram language model, the learned LM's baseline.
- ``graph_baselines``: link-prediction rules (L3, resource allocation, preferential
  attachment) and graph count features.
- ``cube_baselines``: closed-form rules and summary-statistic models of climate datacubes.
- ``catalogue_baselines``: the conservative habitable zone (Kopparapu et al. 2014), the best
  closed-form rule on any single catalogue input (scored in place, or fitted on train planets
  as a ``BinnedRule``), and the catalogue row as features for tree models.
"""

from astrojax.evaluators.catalogue_baselines import (
    BinnedRule,
    best_single_input_rule,
    catalogue_row_features,
    conservative_habitable_zone,
    habitable_zone_flux,
    habitable_zone_margin,
    habitable_zone_report,
    single_input_aucs,
)
from astrojax.evaluators.cube_baselines import CLASS_LABELS, cube_baseline_report, cube_summaries
from astrojax.evaluators.graph_baselines import (
    BASELINES,
    SCORERS,
    graph_count_features,
    heldout_baselines,
    l3_score,
    link_baseline_report,
    preferential_attachment,
    resource_allocation,
)
from astrojax.evaluators.metrics import (
    accuracy_from_sums,
    accuracy_score,
    accuracy_sums,
    average_precision,
    binary_report,
    calibration_from_sums,
    calibration_sums,
    flatten_sums,
    language_model_from_sums,
    r2_from_sums,
    r2_score,
    r2_sums,
    ranking_from_sums,
    ranking_sums,
    roc_auc,
)
from astrojax.evaluators.ngram import NGramModel
from astrojax.evaluators.probes import linear_probe, ridge_probe

__all__ = [
    "BASELINES", "CLASS_LABELS", "BinnedRule", "NGramModel", "SCORERS", "accuracy_from_sums",
    "accuracy_score", "accuracy_sums", "average_precision", "best_single_input_rule",
    "binary_report", "calibration_from_sums", "calibration_sums", "catalogue_row_features",
    "conservative_habitable_zone", "cube_baseline_report", "cube_summaries", "flatten_sums",
    "graph_count_features", "habitable_zone_flux", "habitable_zone_margin",
    "habitable_zone_report", "heldout_baselines", "l3_score", "language_model_from_sums",
    "linear_probe", "link_baseline_report", "preferential_attachment", "r2_from_sums",
    "r2_score", "r2_sums", "ranking_from_sums", "ranking_sums", "resource_allocation",
    "ridge_probe", "roc_auc", "single_input_aucs",
]
