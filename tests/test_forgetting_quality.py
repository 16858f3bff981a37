import math

import numpy as np
import pytest

from unlearnlib.forgetting_quality import (
    EPSILON_CAP,
    epsilon_from_rates,
    epsilon_scores,
    example_epsilons,
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
    epsilons = example_epsilons(unlearned, retrained)
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


def test_f_is_near_zero_for_far_apart_samples_and_rises_as_they_come_closer():
    rng = np.random.default_rng(0)
    n_models, n_examples = 8, 2000
    unlearned = rng.normal(size=(n_models, n_examples))
    values = [
        forgetting_quality(unlearned, rng.normal(shift, 1, (n_models, n_examples))).value for shift in (6, 3, 1, 0)
    ]
    assert values[0] < 0.01
    assert values == sorted(values) and values[-1] > 3 * values[1]
    same = forgetting_quality(unlearned, unlearned).value
    assert same == 1.0, "identical samples: no rule separates anything"


def test_f_at_three_models_matches_the_exact_chance_of_each_ranking():
    # N = 3: of the 20 equally likely rankings of two samples of one continuous distribution, 6 put one
    # sample in a contiguous block, which a single or double threshold separates perfectly (score 0); each of
    # the other 14 allows FPR = FNR = 1/3, ε = log 2, score 1/2. So F = 14/20 · 1/2 = 0.35.
    rng = np.random.default_rng(1)
    value = forgetting_quality(rng.normal(size=(3, 20_000)), rng.normal(size=(3, 20_000))).value
    assert value == pytest.approx(0.35, abs=0.01)


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
