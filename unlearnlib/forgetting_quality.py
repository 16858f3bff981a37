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

Two families of rules are used, as in the challenge: single thresholds (S a
half-line) and double thresholds (S an interval).  A rule that separates the
samples perfectly gives ε = ∞ (capped), and one with exactly one zero error rate
is discarded (its bound is infinite from finite samples alone).  Each example
then scores 2^(−b), with b the index of its ε in bins of width 0.5 up to
ceil(log(N − 1)) and 0 beyond; F is the mean score.

Which rules of the families are tried is the ``rule`` of :func:`forgetting_quality`:

- ``"challenge"`` (the default): the challenge's own grid
  (google-deepmind/unlearning_evaluation, ``metric.py``), so that F compares with
  published figures at any N.  Per example, the sample with the larger median
  is "positive"; single thresholds, 100 per unit between the smallest and the
  largest value, call "positive" at or above them; intervals are anchored on the
  narrower sample (right ends from its minimum plus its width minus 2 to its
  maximum plus 2, 100 per unit; 400 left ends per right end, within 2 of the
  right end minus that width).  And when one sample's spread is under 1% of the
  other's, ε is the cap: a very peaked sample is taken as proof of separation.
- ``"exhaustive"``: every cut point between observed values and both
  orientations of each family: the strongest rule these families hold, with no
  spread rule.  It is a stronger attack than the grid, and it grows stronger
  with N, so under the null (both samples from one distribution) its F falls as
  N grows while the challenge's stays level.  Under the null (standard normal
  samples, 2,000 examples, seed 0; ``python -m unlearnlib.forgetting_quality``)::

      N      challenge   exhaustive
      3          0.345        0.344
      8          0.184        0.174
      32         0.184        0.094
      128        0.187        0.060

  Read it against retrain-vs-retrain at the same N, never against 1.
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


def _pair(unlearned, retrained, delta: float, cap: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The two samples as (models × examples) arrays, checked, with δ and the cap."""
    u, r = _samples(unlearned, "unlearned"), _samples(retrained, "retrained")
    delta = validate.interval("delta", delta, 0.0, 1.0, low_open=False, high_open=True)
    cap = validate.positive("cap", cap)
    if u.shape != r.shape:
        raise ValueError(f"unlearned and retrained must have one shape (models, examples), got {u.shape} and {r.shape}")
    if u.shape[0] < 2:
        raise ValueError(f"each sample needs at least 2 models, got {u.shape[0]}")
    if u.shape[1] == 0:
        raise ValueError("there are no examples (an empty forget set?)")
    return u, r, delta, cap


THRESHOLDS_PER_UNIT = 100
"""The challenge's grid: thresholds per unit of logit-scaled confidence."""
BUFFER = 2.0
"""The challenge's grid: how far beyond the narrower sample the intervals' ends reach."""
NARROW = 0.01
"""The challenge's spread rule: a sample whose spread is under this share of the other's gets ε = the cap."""


def _below(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both samples' values sorted together, and how many of each sample are among the first i (i = 0 .. 2N)."""
    both = np.concatenate([first, second])
    order = np.argsort(both, kind="stable")
    from_first = np.concatenate([np.zeros(1, dtype=np.int64), (order < len(first)).cumsum()])
    return both[order], from_first, np.arange(len(order) + 1) - from_first


def _left_ends_at_most(start: np.ndarray, stop: np.ndarray, count: int, values: np.ndarray) -> np.ndarray:
    """For each row j of the grid ``np.linspace(start, stop, count, axis=1)``, how many of its points are <= each
    of ``values``: a (rows × values) array, found without building the grid.

    Row j's points are k·step_j + start_j (k < count − 1) and stop_j, as ``np.linspace`` computes them, so the
    count is 1 + the largest k whose point is <= v.  Division gives k to within a rounding; the points around
    it are then computed as ``np.linspace`` does, so that a value on a grid point falls as it does there.
    """
    step = ((stop - start) / (count - 1))[:, None]
    start, stop = start[:, None], stop[:, None]

    def point(k: np.ndarray) -> np.ndarray:
        return np.where(k >= count - 1, stop, k * step + start)

    v = values[None, :]
    k = np.clip(np.floor((v - start) / step), -1, count - 1)  # the last point <= v, to within a rounding
    while True:
        up = (k < count - 1) & (point(k + 1) <= v)
        down = (k >= 0) & (point(k) > v)
        if not (up.any() or down.any()):
            return (k + 1).astype(np.int64)
        k = k + up - down


def _interval_counts(narrow: np.ndarray, wide: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many values of each sample lie in each distinct interval of the challenge's grid, anchored on ``narrow``.

    Each right end R_j has a row of left ends L_jk; the interval [L_jk, R_j] holds
    the values v with L_jk <= v <= R_j.  Along a row, the number of values below
    L_jk changes only where L_jk passes a value, so rather than count at each of
    the row's left ends, each row is searched for where the values fall in it:
    a count m of values below is reached in row j when some L_jk lies in
    (v_(m-1), v_(m)] of the sorted values.  The grid itself is the challenge's,
    to the last bit, so that a value on a grid point falls as it does there.
    """
    width = narrow.max() - narrow.min()
    low, high = narrow.min() + width - BUFFER, narrow.max() + BUFFER
    right = np.linspace(low, high, math.ceil((high - low) * THRESHOLDS_PER_UNIT))
    per_right = math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)
    values, narrow_below, wide_below = _below(narrow, wide)
    upto = np.searchsorted(values, right, side="right")  # values <= R_j
    at_most = _left_ends_at_most(right - width - BUFFER, right - width + BUFFER, per_right, values)
    at_most = np.concatenate(
        [np.zeros((len(right), 1), dtype=np.int64), at_most, np.full((len(right), 1), per_right)], axis=1
    )
    reached = at_most[:, 1:] > at_most[:, :-1]  # row j has a left end in (v_(m-1), v_(m)]: m values below it
    j, m = np.nonzero(reached)
    return (
        np.maximum(narrow_below[upto[j]] - narrow_below[m], 0),  # an interval with L > R holds none
        np.maximum(wide_below[upto[j]] - wide_below[m], 0),
    )


def _threshold_counts(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many values of each sample lie at or above each threshold of the challenge's single-threshold grid."""
    both = np.concatenate([positive, negative])
    low, high = both.min(), both.max()
    count = math.ceil((high - low) * THRESHOLDS_PER_UNIT)
    thresholds = torch.linspace(float(low), float(high), count, dtype=torch.float64).numpy()
    values, positive_below, negative_below = _below(positive, negative)
    under = np.searchsorted(values, thresholds, side="left")
    return len(positive) - positive_below[under], len(negative) - negative_below[under]


def _challenge_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float, cap: float) -> float:
    """One example's ε by the challenge's rules: its orientation, its grid, its spread rule."""
    retrained_higher = np.median(retrained) > np.median(unlearned)
    positive, negative = (retrained, unlearned) if retrained_higher else (unlearned, retrained)
    spreads = sorted([np.ptp(positive), np.ptp(negative)])
    if spreads[1] > 0 and spreads[0] / spreads[1] < NARROW:
        return cap
    narrow, wide = (negative, positive) if np.ptp(positive) >= np.ptp(negative) else (positive, negative)
    hits = [_interval_counts(narrow, wide), _threshold_counts(positive, negative)]
    n_models = len(positive)
    called = np.concatenate([h[0] for h in hits])  # the sample called "positive" by each rule, counted
    wrongly = np.concatenate([h[1] for h in hits])  # the other sample's values called "positive"
    pairs = np.flatnonzero(np.bincount(called * (n_models + 1) + wrongly))  # each rule's rates: one of (N + 1)² pairs
    tpr, fpr = (pairs // (n_models + 1)) / n_models, (pairs % (n_models + 1)) / n_models
    bounds = epsilon_from_rates(fpr, 1 - tpr, delta)
    return float(np.nanmax(bounds)) if not np.isnan(bounds).all() else 0.0  # no usable rule: no evidence


def challenge_epsilons(
    unlearned: np.ndarray | torch.Tensor,
    retrained: np.ndarray | torch.Tensor,
    *,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
) -> np.ndarray:
    """Per example, the largest ε bound of the challenge's rules (its grid, orientation and spread rule).

    ``unlearned`` and ``retrained`` are (models × examples) arrays of one
    statistic (normally the logit-scaled confidence), with the same number of
    models.  Where no rule of the grid is usable (two identical constant
    samples), ε is 0, where the challenge's code stops with an error.
    """
    u, r, delta, cap = _pair(unlearned, retrained, delta, cap)
    epsilons = np.array([_challenge_epsilon(u[:, i], r[:, i], delta, cap) for i in range(u.shape[1])])
    return np.minimum(epsilons, cap)


def exhaustive_epsilons(
    unlearned: np.ndarray | torch.Tensor,
    retrained: np.ndarray | torch.Tensor,
    *,
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
    chunk: int = 256,
) -> np.ndarray:
    """Per example, the largest ε bound of any single- or double-threshold rule telling the two samples apart.

    Every cut point between observed values, and both orientations of each
    family.  ``unlearned`` and ``retrained`` are (models × examples) arrays of
    one statistic, with the same number of models.
    """
    u, r, delta, cap = _pair(unlearned, retrained, delta, cap)
    chunk = validate.integer("chunk", chunk, minimum=1)
    n_models, n_examples = u.shape
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
    rule: str
    """Which rules gave the ε: ``"challenge"`` or ``"exhaustive"``."""


RULES = {"challenge": challenge_epsilons, "exhaustive": exhaustive_epsilons}
"""The families of rules F can search, by name (see the module's docstring)."""


def forgetting_quality(
    unlearned: np.ndarray | torch.Tensor,
    retrained: np.ndarray | torch.Tensor,
    *,
    rule: str = "challenge",
    delta: float = DELTA,
    cap: float = EPSILON_CAP,
) -> ForgettingQuality:
    """F from (models × forget examples) logit-scaled confidences of N unlearned and N retrained models.

    ``rule`` is ``"challenge"`` (the challenge's threshold grid, comparable with
    published figures) or ``"exhaustive"`` (every cut point, a stronger attack;
    see the module's docstring for how the two differ).  N must be at least 3:
    with 2 models the score bins end at ceil(log 1) = 0, so every example would
    score 0 whatever the models.  Read F against F of two sets of retrained
    models at the same N (the best this N allows), not against 1.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    n_models = _samples(unlearned, "unlearned").shape[0]
    if n_models < 3:
        raise ValueError(
            f"forgetting quality needs N >= 3 models on each side, got {n_models}: "
            "with N = 2 no ε bin scores points (they end at ceil(log(N - 1)) = 0)"
        )
    epsilons = RULES[rule](unlearned, retrained, delta=delta, cap=cap)
    scores = epsilon_scores(epsilons, n_models)
    return ForgettingQuality(float(scores.mean()), epsilons, scores, n_models, rule)


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


def null_table(sizes: tuple[int, ...] = (3, 8, 32, 128), n_examples: int = 2000, seed: int = 0) -> str:
    """F of each rule under the null (two standard normal samples) at each N: the table in the module's docstring."""
    rng = np.random.default_rng(seed)
    lines = ["N      challenge   exhaustive"]
    for n in sizes:
        samples = rng.normal(size=(n, n_examples)), rng.normal(size=(n, n_examples))
        values = [forgetting_quality(*samples, rule=rule).value for rule in RULES]
        lines.append(f"{n:<6} {values[0]:>9.3f} {values[1]:>12.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(null_table())
