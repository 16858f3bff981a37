"""Forgetting quality F, the NeurIPS 2023 unlearning challenge's measure, and the unlearning score.

Unlearning is run N times (different seeds) and so is retraining without the
forget set.  For each forget example this gives two samples of N logit-scaled
confidences, one per model.  If unlearning were perfect, the two samples would
come from one distribution, and no test could tell them apart.

Each decision rule "call a model *unlearned* when its confidence lies in S" is a
hypothesis test with false-positive rate FPR and false-negative rate FNR.  An
(ε, δ)-differentially-private mechanism forces every such test to satisfy
FPR + e^ε·FNR ≥ 1 − δ and FNR + e^ε·FPR ≥ 1 − δ, so each test gives a lower
bound on ε:

    ε ≥ max(log(1 − δ − FPR) − log FNR,  log(1 − δ − FNR) − log FPR).

The rules searched are single thresholds (S a half-line) and double thresholds
(S an interval or its complement), with the cut points anywhere between the
observed values, so each example gets the strongest bound any threshold grid
could give.  As in the challenge, a rule that separates the samples perfectly
gives ε = ∞ (capped), and one with exactly one zero error rate is discarded
(its bound is infinite from finite samples alone).  Each example then scores
2^(−b), with b the index of its ε in bins of width 0.5 up to ceil(log(N − 1))
and 0 beyond; F is the mean score.

The challenge's own code scans a fixed grid of thresholds, one orientation per
rule family, and also sets ε to the cap when one sample's spread is under 1% of
the other's.  Searching every cut point and both orientations finds each
example's strongest rule at least as well; the spread rule is left out, since an
interval around a narrow sample separates it anyway unless the other sample
has a value inside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import validate

DELTA = 1e-5
"""δ of the (ε, δ) bound."""
EPSILON_CAP = 50.0
"""ε of a perfectly separating rule (otherwise infinite)."""
BIN_WIDTH = 0.5


def epsilon_from_rates(fpr: np.ndarray | float, fnr: np.ndarray | float, delta: float = DELTA) -> np.ndarray:
    """The ε lower bound of a test with these error rates (elementwise).

    Both rates zero (perfect separation): ∞.  Exactly one zero: NaN (the test is
    discarded).  Otherwise max(log(1 − δ − FPR) − log FNR, log(1 − δ − FNR) − log FPR), at least 0.
    """
    fpr, fnr = validate.real_array("fpr", fpr), validate.real_array("fnr", fnr)
    if fpr.shape != fnr.shape:
        raise ValueError(f"fpr and fnr must have one shape, got {fpr.shape} and {fnr.shape}")
    for name, rates in (("fpr", fpr), ("fnr", fnr)):
        outside = ~((rates >= 0) & (rates <= 1))  # NaN too
        if outside.any():
            raise ValueError(f"error rates must lie in [0, 1]: {name} holds {rates[outside].ravel()[0]}")
    delta = validate.interval("delta", delta, 0.0, 1.0, low_open=False, high_open=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        epsilon = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    epsilon = np.maximum(epsilon, 0.0)  # both rates zero: log 0 = -inf makes it inf, as perfect separation is
    return np.where((fpr == 0) ^ (fnr == 0), np.nan, epsilon)


def _samples(values: np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    array = validate.real_array(what, values)
    if array.ndim != 2:
        raise ValueError(f"{what} must be (models, examples), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds non-finite values")
    return array


def example_epsilons(
    unlearned: np.ndarray | torch.Tensor,
    retrained: np.ndarray | torch.Tensor,
    *,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
    chunk: int = 256,
) -> np.ndarray:
    """Per example, the largest ε bound of any single- or double-threshold rule telling the two samples apart.

    ``unlearned`` and ``retrained`` are (models × examples) arrays of one
    statistic (normally the logit-scaled confidence), with the same number of models.
    """
    u, r = _samples(unlearned, "unlearned"), _samples(retrained, "retrained")
    delta = validate.interval("delta", delta, 0.0, 1.0, low_open=False, high_open=True)
    cap = validate.positive("cap", cap)
    chunk = validate.integer("chunk", chunk, minimum=1)
    if u.shape != r.shape:
        raise ValueError(f"unlearned and retrained must have one shape (models, examples), got {u.shape} and {r.shape}")
    n_models, n_examples = u.shape
    if n_models < 2:
        raise ValueError(f"each sample needs at least 2 models, got {n_models}")
    if n_examples == 0:
        raise ValueError("there are no examples (an empty forget set?)")
    values = np.concatenate([u, r]).T  # examples × 2N
    from_unlearned = np.concatenate([np.ones(n_models), np.zeros(n_models)])
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    size = 2 * n_models
    below_unlearned = np.concatenate([np.zeros((n_examples, 1)), from_unlearned[order].cumsum(1)], axis=1)
    below_retrained = np.arange(size + 1) - below_unlearned
    # A cut may fall before the first value, after the last, or between two different values (never inside a tie).
    can_cut = np.ones((n_examples, size + 1), dtype=bool)
    can_cut[:, 1:-1] = ordered[:, 1:] > ordered[:, :-1]
    start, stop = np.triu_indices(size + 1, 1)
    epsilons = np.empty(n_examples)
    for lo in range(0, n_examples, chunk):
        rows = slice(lo, lo + chunk)
        tpr = (below_unlearned[rows][:, stop] - below_unlearned[rows][:, start]) / n_models
        fpr = (below_retrained[rows][:, stop] - below_retrained[rows][:, start]) / n_models
        inside = epsilon_from_rates(fpr, 1 - tpr, delta)  # "unlearned" when inside the interval
        outside = epsilon_from_rates(1 - fpr, tpr, delta)  # "unlearned" when outside it
        bound = np.fmax(inside, outside)
        bound[~(can_cut[rows][:, start] & can_cut[rows][:, stop])] = np.nan
        epsilons[rows] = np.where(np.isnan(bound), 0.0, bound).max(1)  # no usable rule: no evidence, ε = 0
    return np.minimum(epsilons, cap)


def score_bins(n_models: int) -> int:
    """How many ε bins of width 0.5 score points at N models: up to ceil(log(N − 1))."""
    n_models = validate.integer("n_models", n_models)
    if n_models < 2:
        raise ValueError(f"n_models must be at least 2, got {n_models}")
    return round(math.ceil(math.log(n_models - 1)) / BIN_WIDTH)


def epsilon_scores(epsilons: np.ndarray, n_models: int) -> np.ndarray:
    """Each example's points: 2^(−b) for ε in bin b = floor(ε / 0.5), 0 beyond the last bin."""
    epsilons = validate.real_array("epsilons", epsilons)
    if (epsilons < 0).any() or np.isnan(epsilons).any():
        raise ValueError("epsilons must be non-negative numbers")
    index = np.floor(epsilons / BIN_WIDTH)
    return np.where(index < score_bins(n_models), 0.5**index, 0.0)


@dataclass(frozen=True)
class ForgettingQuality:
    """F with its per-example parts."""

    value: float
    """F, the mean of the per-example scores."""
    epsilons: np.ndarray
    scores: np.ndarray
    n_models: int


def forgetting_quality(
    unlearned: np.ndarray | torch.Tensor,
    retrained: np.ndarray | torch.Tensor,
    *,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
) -> ForgettingQuality:
    """F from (models × forget examples) logit-scaled confidences of N unlearned and N retrained models.

    N must be at least 3: with 2 models the score bins end at ceil(log 1) = 0,
    so every example would score 0 whatever the models.  Read F against F of
    two sets of retrained models at the same N (the best this N allows), not against 1.
    """
    n_models = _samples(unlearned, "unlearned").shape[0]
    if n_models < 3:
        raise ValueError(
            f"forgetting quality needs N >= 3 models on each side, got {n_models}: "
            "with N = 2 no ε bin scores points (they end at ceil(log(N - 1)) = 0)"
        )
    epsilons = example_epsilons(unlearned, retrained, delta=delta, cap=cap)
    scores = epsilon_scores(epsilons, n_models)
    return ForgettingQuality(float(scores.mean()), epsilons, scores, n_models)


def unlearning_score(
    forgetting: float, retain_unlearned: float, retain_retrained: float, test_unlearned: float, test_retrained: float
) -> float:
    """The challenge's score F · (RA_u / RA_r) · (TA_u / TA_r): forgetting, discounted by lost utility."""
    forgetting = validate.real("forgetting", forgetting)
    if not 0 <= forgetting <= 1:
        raise ValueError(f"forgetting quality must be in [0, 1], got {forgetting}")
    for name, value in (
        ("retain_unlearned", retain_unlearned),
        ("retain_retrained", retain_retrained),
        ("test_unlearned", test_unlearned),
        ("test_retrained", test_retrained),
    ):
        value = validate.real(name, value)
        if not 0 <= value <= 1:
            raise ValueError(f"{name} is an accuracy and must be in [0, 1], got {value}")
    if retain_retrained == 0 or test_retrained == 0:
        raise ValueError(
            "the retrained model's accuracies (retain_retrained, test_retrained) must be positive to divide by them"
        )
    return forgetting * (retain_unlearned / retain_retrained) * (test_unlearned / test_retrained)
