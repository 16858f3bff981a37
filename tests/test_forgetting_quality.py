import math
import re
import warnings

import numpy as np
import pytest

from unlearnlib.forgetting_quality import (
    EPSILON_CAP,
    _left_ends_at_most,
    challenge_epsilons,
    epsilon_from_rates,
    epsilon_scores,
    exhaustive_epsilons,
    forgetting_quality,
    score_bins,
    unlearning_score,
)


@pytest.mark.parametrize(
    ("fpr", "fnr", "delta", "expected"),
    [
        (0.1, 0.2, 0.0, math.log(8)),  # max(log(0.9 / 0.2), log(0.8 / 0.1))
        (0.2, 0.1, 0.0, math.log(8)),  # symmetric in the two error rates
        (0.25, 0.25, 1e-5, math.log((0.75 - 1e-5) / 0.25)),
        (0.5, 0.5, 0.0, 0.0),  # a coin flip proves nothing
        (0.6, 0.7, 0.0, 0.0),  # worse than a coin flip: the bound is negative, clipped to 0
        (0.0, 0.0, 1e-5, math.inf),  # perfect separation
    ],
)
def test_epsilon_of_hand_computed_error_rates(fpr, fnr, delta, expected):
    assert epsilon_from_rates(fpr, fnr, delta) == pytest.approx(expected)


def test_a_test_with_exactly_one_zero_error_rate_is_discarded():
    assert np.isnan(epsilon_from_rates([0.0, 0.3], [0.3, 0.0])).all()


def test_epsilon_rates_must_be_rates():
    with pytest.raises(ValueError, match=r"error rates must lie in \[0, 1\]"):
        epsilon_from_rates(1.5, 0.1)
    with pytest.raises(ValueError, match="one shape"):
        epsilon_from_rates([0.1, 0.2], [0.1])


def test_strongest_rule_on_hand_made_samples():
    unlearned = np.array([[1.0, 1.0, 1.0], [3.0, 2.0, 5.0], [5.0, 3.0, 7.0]])  # three models, three examples
    retrained = np.array([[2.0, 10.0, 1.0], [4.0, 11.0, 5.0], [6.0, 12.0, 7.0]])
    epsilons = exhaustive_epsilons(unlearned, retrained)
    # Interleaved 1 3 5 | 2 4 6: the best rule with two non-zero error rates has FPR = FNR = 1/3.
    assert epsilons[0] == pytest.approx(math.log(2 - 3e-5))
    # {1, 2, 3} against {10, 11, 12}: perfectly separated, ε = ∞, capped.
    assert epsilons[1] == EPSILON_CAP
    # The same values on both sides: no cut can separate anything, ε = 0.
    assert epsilons[2] == 0.0


def test_score_bins_end_at_ceil_log_n_minus_one():
    assert [score_bins(n) for n in (2, 3, 5, 10, 100)] == [0, 2, 4, 6, 10]
    scores = epsilon_scores(np.array([0.0, 0.49, 0.5, 0.99, 1.0, EPSILON_CAP]), n_models=3)
    assert scores.tolist() == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]
    assert epsilon_scores(np.array([2.6]), n_models=100).tolist() == [2.0**-5]


@pytest.mark.parametrize("rule", ["challenge", "exhaustive"])
def test_f_is_near_zero_for_far_apart_samples_and_rises_as_they_come_closer(rule):
    rng = np.random.default_rng(0)
    n_models, n_examples = 8, 500
    unlearned = rng.normal(size=(n_models, n_examples))
    values = [
        forgetting_quality(unlearned, rng.normal(shift, 1, (n_models, n_examples)), rule=rule).value
        for shift in (6, 3, 1, 0)
    ]
    assert values[0] < 0.01
    assert values == sorted(values) and values[-1] > 3 * values[1]
    same = forgetting_quality(unlearned, unlearned, rule=rule)
    assert same.value == 1.0 and same.rule == rule, "identical samples: no rule separates anything"


@pytest.mark.parametrize(
    ("rule", "n_examples", "tolerance"), [("exhaustive", 20_000, 0.01), ("challenge", 3_000, 0.02)]
)
def test_f_at_three_models_matches_the_exact_chance_of_each_ranking(rule, n_examples, tolerance):
    # N = 3: of the 20 equally likely rankings of two samples of one continuous distribution, 6 put one
    # sample in a contiguous block, which a single or double threshold separates perfectly (score 0); each of
    # the other 14 allows FPR = FNR = 1/3, ε = log 2, score 1/2. So F = 14/20 · 1/2 = 0.35.  The challenge's
    # grid finds the same rules at N = 3 (its tolerance is wider for its smaller sample: 4 standard errors).
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(3, n_examples)), rng.normal(size=(3, n_examples))
    assert forgetting_quality(*samples, rule=rule).value == pytest.approx(0.35, abs=tolerance)


def official_f(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    """The challenge's forgetting quality, transcribed step by step from its description, by brute force.

    Per example: the sample with the larger median is positive.  If one sample's
    spread is under 1% of the other's, ε = 50.  Otherwise every rule of two
    families gives rates: intervals [left, right] calling the narrower sample
    (400 left ends within 2 of each right end minus the narrower spread; right
    ends 100 per unit from its minimum plus its spread minus 2 to its maximum
    plus 2), and thresholds (100 per unit over both samples) calling the
    positive sample at or above them.  Rates with FPR = FNR = 0 give ε = ∞, with
    one of them 0 are dropped; the rest give max(log(1 − δ − FPR) − log FNR,
    log(1 − δ − FNR) − log FPR) clipped at 0.  ε is the largest, capped at 50;
    examples score 2^-k in bins of 0.5 up to ceil(log(N − 1)).
    """
    n_models, n_examples = unlearned.shape
    delta, epsilons = 1e-5, []
    for i in range(n_examples):
        u, r = unlearned[:, i], retrained[:, i]
        pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
        pos_spread, neg_spread = pos.max() - pos.min(), neg.max() - neg.min()
        largest, smallest = max(pos_spread, neg_spread), min(pos_spread, neg_spread)
        if largest > 0 and smallest / largest < 0.01:
            epsilons.append(50.0)
            continue
        a, b = (neg, pos) if pos_spread >= neg_spread else (pos, neg)
        lo, hi = a.min() + smallest - 2.0, a.max() + 2.0
        right_ends = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
        lefts = np.concatenate([np.linspace(t - smallest - 2.0, t - smallest + 2.0, 400) for t in right_ends])
        rights = np.repeat(right_ends, 400)
        tpr = [((lefts[:, None] <= a[None, :]) & (a[None, :] <= rights[:, None])).mean(1)]
        fpr = [((lefts[:, None] <= b[None, :]) & (b[None, :] <= rights[:, None])).mean(1)]
        every = np.concatenate([pos, neg])
        thresholds = np.linspace(every.min(), every.max(), int(np.ceil((every.max() - every.min()) * 100)))
        tpr.append((pos[None, :] >= thresholds[:, None]).mean(1))
        fpr.append((neg[None, :] >= thresholds[:, None]).mean(1))
        tpr, fpr = np.concatenate(tpr), np.concatenate(fpr)
        fnr = 1 - tpr
        both_zero = (fpr == 0) & (fnr == 0)
        usable = (fpr > 0) & (fnr > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            bounds = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
        bounds = np.nan_to_num(bounds[usable], nan=-np.inf)
        best = math.inf if both_zero.any() else max(0.0, bounds.max(initial=0.0))
        epsilons.append(min(best, 50.0))
    points = {k * 0.5: 0.5**k for k in range(int(math.ceil(math.log(n_models - 1)) / 0.5))}
    return float(np.mean([next((v for start, v in points.items() if e < start + 0.5), 0.0) for e in epsilons]))


@pytest.mark.parametrize("n_models", [3, 8, 32])
def test_the_default_f_is_the_challenges_own_on_continuous_samples(n_models):
    rng = np.random.default_rng(n_models)
    n_examples = {3: 50, 8: 40, 32: 20}[n_models]
    base = rng.normal(size=(n_models, n_examples))
    cases = {
        "one distribution": rng.normal(size=(n_models, n_examples)),
        "shifted by 1": rng.normal(1.0, 1.0, (n_models, n_examples)),
        "three times as wide": rng.normal(0.0, 3.0, (n_models, n_examples)),
        "far narrower": rng.normal(0.5, 0.005, (n_models, n_examples)),
    }
    for name, other in cases.items():
        # Agreement within 0.01 would do; the grid is the challenge's to the last bit, so the two agree exactly.
        assert forgetting_quality(base, other).value == pytest.approx(official_f(base, other), abs=1e-9), name
        assert forgetting_quality(other, base).value == pytest.approx(official_f(other, base), abs=1e-9), name


def test_the_two_rules_part_under_the_null_as_n_grows():
    rng = np.random.default_rng(0)
    null = {n: (rng.normal(size=(n, 300)), rng.normal(size=(n, 300))) for n in (3, 32)}
    quality = {
        (n, rule): forgetting_quality(*null[n], rule=rule).value for n in null for rule in ("challenge", "exhaustive")
    }
    assert abs(quality[3, "challenge"] - quality[3, "exhaustive"]) < 0.05, "at N = 3 both find the same rules"
    assert quality[32, "exhaustive"] < quality[32, "challenge"] - 0.05, "every cut point: a stronger attack at N = 32"
    assert 0.12 < quality[32, "challenge"] < 0.26, "the challenge's grid keeps F level (about 0.19 here)"


def test_the_challenge_takes_a_very_peaked_sample_as_proof_of_separation():
    constant = np.zeros((3, 1))
    spread = np.array([[-1.0], [0.0], [1.0]])  # the constant's value sits inside the other sample
    assert challenge_epsilons(constant, spread)[0] == EPSILON_CAP, "spread under 1% of the other's: ε is the cap"
    assert exhaustive_epsilons(constant, spread)[0] < 1, "no cut point separates 0 from {-1, 0, 1}"
    assert challenge_epsilons(constant, constant)[0] == 0.0, "identical constants: no usable rule, no evidence"


@pytest.mark.parametrize(
    ("unlearned", "retrained", "message"),
    [
        (np.zeros((2, 5)), np.zeros((2, 5)), "N >= 3"),
        (np.zeros((3, 5)), np.zeros((3, 4)), "one shape"),
        (np.zeros((3, 0)), np.zeros((3, 0)), "empty forget set"),
        (np.zeros(5), np.zeros(5), r"\(models, examples\)"),
        (np.full((3, 5), np.nan), np.zeros((3, 5)), "non-finite"),
    ],
)
def test_forgetting_quality_refuses_bad_input(unlearned, retrained, message):
    with pytest.raises(ValueError, match=message):
        forgetting_quality(unlearned, retrained)


def test_unlearning_score_arithmetic():
    assert unlearning_score(0.5, 0.9, 1.0, 0.8, 0.9) == pytest.approx(0.5 * 0.9 * 0.8 / 0.9)
    assert unlearning_score(0.4, 0.95, 0.95, 0.9, 0.9) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"forgetting quality must be in \[0, 1\]"):
        unlearning_score(1.5, 0.9, 0.9, 0.9, 0.9)
    with pytest.raises(ValueError, match="test_unlearned is an accuracy"):
        unlearning_score(0.5, 0.9, 0.9, 90, 0.9)
    with pytest.raises(ValueError, match="must be positive"):
        unlearning_score(0.5, 0.9, 0.0, 0.9, 0.9)


HAND_MADE = (
    np.array([[1.0, 1.0, 1.0], [3.0, 2.0, 5.0], [5.0, 3.0, 7.0]]),
    np.array([[2.0, 10.0, 1.0], [4.0, 11.0, 5.0], [6.0, 12.0, 7.0]]),
)


def test_delta_and_the_cap_reach_every_example_and_its_score():
    """The hand-made samples above with δ = 0.1 and the cap at 10: FPR = FNR = 1/3 gives log((2/3 − 0.1) / (1/3)),
    the perfectly separated example the cap, the inseparable one 0; at N = 3 they score ½, 0 and 1."""
    quality = forgetting_quality(*HAND_MADE, delta=0.1, cap=10.0)
    assert quality.epsilons == pytest.approx([math.log(1.7), 10.0, 0.0])
    assert quality.scores.tolist() == [0.5, 0.0, 1.0] and quality.value == pytest.approx(0.5)
    assert quality.n_models == 3
    assert exhaustive_epsilons(*HAND_MADE, delta=0.0)[0] == pytest.approx(math.log(2)), "δ = 0 is allowed"


def test_the_examples_are_scored_alike_in_chunks_of_any_size():
    rng = np.random.default_rng(5)
    unlearned, retrained = rng.normal(size=(4, 23)), rng.normal(0.5, 1, (4, 23))
    whole = exhaustive_epsilons(unlearned, retrained)
    for chunk in (1, 5, 23):
        assert np.array_equal(exhaustive_epsilons(unlearned, retrained, chunk=chunk), whole)


def test_two_models_a_side_give_epsilons_though_not_yet_a_score():
    epsilons = exhaustive_epsilons(HAND_MADE[0][:2], HAND_MADE[1][:2])
    assert epsilons[1] == EPSILON_CAP and epsilons[2] == 0.0


def test_rates_at_the_edges_give_their_bounds_without_a_warning():
    """Perfect separation, one zero rate and FPR = 1 (whose log(1 − δ − FPR) is undefined) are answers, not
    warnings: the user sees ∞, a discarded test and 0."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert epsilon_from_rates(0.0, 0.0).item() == math.inf
        assert np.isnan(epsilon_from_rates(1.0, 0.0))
        assert epsilon_from_rates(1.0, 0.5, 0.1).item() == 0.0


def test_the_unlearning_score_at_the_ends_of_its_ranges():
    assert unlearning_score(0.0, 0.9, 0.9, 0.9, 0.9) == 0.0
    assert unlearning_score(1.0, 0.9, 1.0, 1.0, 1.0) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: epsilon_from_rates(0.1, 0.1, 1.0), "delta must be in [0, 1), got 1.0"),
        (lambda: epsilon_from_rates(0.1, 0.1, 1.5), "delta must be in [0, 1), got 1.5"),
        (lambda: exhaustive_epsilons(*HAND_MADE, delta=1.0), "delta must be in [0, 1), got 1.0"),
        (lambda: exhaustive_epsilons(*HAND_MADE, delta=1.5), "delta must be in [0, 1), got 1.5"),
        (lambda: exhaustive_epsilons(*HAND_MADE, cap=0), "cap must be positive, got 0.0"),
        (lambda: exhaustive_epsilons(*HAND_MADE, chunk=0), "chunk must be positive (at least 1), got 0"),
        (lambda: exhaustive_epsilons(np.zeros((1, 3)), np.zeros((1, 3))), "each sample needs at least 2 models, got 1"),
        (
            lambda: exhaustive_epsilons(np.zeros((3, 0)), np.zeros((3, 0))),
            "there are no examples (an empty forget set?)",
        ),
        (
            lambda: exhaustive_epsilons("u", HAND_MADE[1]),
            "unlearned must be real numbers (an array, tensor or list of them), got 'u'",
        ),
        (
            lambda: exhaustive_epsilons(HAND_MADE[0], "r"),
            "retrained must be real numbers (an array, tensor or list of them), got 'r'",
        ),
        (lambda: epsilon_scores(np.array([-1.0]), 3), "epsilons must be non-negative numbers"),
        (lambda: epsilon_scores(np.array([np.nan]), 3), "epsilons must be non-negative numbers"),
        (lambda: epsilon_scores("e", 3), "epsilons must be real numbers (an array, tensor or list of them), got 'e'"),
        (lambda: score_bins(1), "n_models must be at least 2, got 1"),
        (lambda: score_bins(2.0), "n_models must be a whole number, got 2.0 (float)"),
        (
            lambda: forgetting_quality(*HAND_MADE, rule="grid"),
            "unknown rule 'grid'; choose one of challenge, exhaustive",
        ),
        (lambda: challenge_epsilons(*HAND_MADE, cap=-1), "cap must be positive, got -1.0"),
        (
            lambda: forgetting_quality(np.zeros((2, 5)), np.zeros((2, 5))),
            "forgetting quality needs N >= 3 models on each side, got 2: "
            "with N = 2 no ε bin scores points (they end at ceil(log(N - 1)) = 0)",
        ),
        (
            lambda: unlearning_score(0.5, 1.5, 0.9, 0.9, 0.9),
            "retain_unlearned is an accuracy and must be in [0, 1], got 1.5",
        ),
        (
            lambda: unlearning_score(0.5, 0.9, 0.9, 0.9, 1.5),
            "test_retrained is an accuracy and must be in [0, 1], got 1.5",
        ),
        (
            lambda: unlearning_score(0.5, 0.9, 0.9, 0.9, 0.0),
            "the retrained model's accuracies (retain_retrained, test_retrained) must be positive to divide by them",
        ),
    ],
)
def test_each_refusal_names_its_argument_and_what_is_allowed(call, message):
    with pytest.raises((ValueError, TypeError), match=f"^{re.escape(message)}$"):
        call()


def test_left_ends_are_counted_as_on_the_built_grid_even_on_and_beside_its_points():
    rng = np.random.default_rng(0)
    start = rng.normal(size=50) * 3
    stop = start + 4.0
    grid = np.linspace(start, stop, 400, axis=1)
    on = grid[rng.integers(0, 50, 30), rng.integers(0, 400, 30)]
    values = np.sort(np.concatenate([on, np.nextafter(on, -np.inf), np.nextafter(on, np.inf), rng.normal(size=30) * 5]))
    expected = np.stack([np.searchsorted(row, values, side="right") for row in grid])
    np.testing.assert_array_equal(_left_ends_at_most(start, stop, 400, values), expected)
