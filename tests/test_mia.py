import re

import numpy as np
import pytest
import torch

from unlearnlib.mia import attack_roc, balanced_sample, lira_offline, mia_efficacy, simple_mia


def test_simple_mia_is_chance_on_one_distribution_and_perfect_on_separated_ones():
    rng = np.random.default_rng(0)
    same = simple_mia(rng.exponential(size=2000), rng.exponential(size=2000))
    assert abs(same - 0.5) < 0.03
    apart = simple_mia(rng.normal(0, 1, 500), rng.normal(10, 1, 500))
    assert apart > 0.99


def test_simple_mia_does_not_depend_on_the_scale_of_the_loss():
    rng = np.random.default_rng(1)
    members, nonmembers = rng.exponential(1, 400), rng.exponential(3, 400)
    assert simple_mia(members * 1e-4, nonmembers * 1e-4) == pytest.approx(simple_mia(members, nonmembers))
    assert simple_mia(members, nonmembers) > 0.6


def test_the_larger_group_is_cut_to_the_smaller_by_a_seeded_draw():
    members, nonmembers = balanced_sample(np.arange(10.0), np.arange(100.0, 1000.0), seed=3)
    assert len(members) == len(nonmembers) == 10 and set(members) == set(range(10))
    again = balanced_sample(np.arange(10.0), np.arange(100.0, 1000.0), seed=3)[1]
    assert np.array_equal(nonmembers, again) and len(set(nonmembers)) == 10


def test_simple_mia_accepts_tensors():
    losses = torch.linspace(0, 1, 40)
    assert simple_mia(losses[:20], losses[20:]) > 0.9


@pytest.mark.parametrize(
    ("members", "nonmembers", "options", "message"),
    [
        ([], [1.0] * 10, {}, "members is empty"),
        ([[1.0, 2.0]], [1.0], {}, "1-d"),
        ([1.0, np.nan] * 5, [1.0] * 10, {}, "non-finite"),
        ([1.0] * 10, [2.0] * 10, {"folds": 1}, "folds must be at least 2"),
        ([1.0, 2.0, 3.0], [1.0] * 10, {}, "at least 5 examples per group"),
    ],
)
def test_simple_mia_refuses_bad_input(members, nonmembers, options, message):
    with pytest.raises(ValueError, match=message):
        simple_mia(members, nonmembers, **options)


def test_mia_efficacy_counts_the_forget_examples_that_look_unseen():
    rng = np.random.default_rng(2)
    retain, test = rng.normal(4, 1, 2000), rng.normal(0, 1, 500)
    assert mia_efficacy(retain, test, rng.normal(4, 1, 300)) < 0.05, "remembered like the retain set"
    assert mia_efficacy(retain, test, rng.normal(0, 1, 300)) > 0.95, "as unseen as the test set"
    assert mia_efficacy(retain, test, np.r_[rng.normal(4, 0.1, 100), rng.normal(0, 0.1, 100)]) == pytest.approx(0.5)


def test_lira_standardises_each_confidence_by_its_shadow_distribution():
    shadows = np.array([[0.0, 1.0], [2.0, 3.0]])  # per example: mean 1 and 2, variance 2 (ddof 1)
    z = lira_offline([1 + np.sqrt(2), 2.0], shadows)
    assert np.allclose(z, [1.0, 0.0])
    shadows = np.array([[0.0, 1.0], [2.0, 1.5], [4.0, 2.0]])  # variances 4 and 0.25
    assert np.allclose(lira_offline([4.0, 2.5], shadows, global_variance=False), [1.0, 2.0])
    assert np.allclose(lira_offline([4.0, 2.5], shadows), np.array([2.0, 1.0]) / np.sqrt((4 + 0.25) / 2))


def test_lira_beats_a_global_threshold_when_examples_differ_in_difficulty():
    rng = np.random.default_rng(3)
    n, shift = 2000, 1.0
    difficulty = rng.normal(0, 3, 2 * n)  # each example's typical confidence on models that never saw it
    shadows = difficulty + rng.normal(0, 0.5, (8, 2 * n))
    target = difficulty + rng.normal(0, 0.5, 2 * n)
    target[:n] += shift  # the first half are members: the target model is more confident on them
    lira = attack_roc(*np.split(lira_offline(target, shadows), 2))
    global_threshold = attack_roc(target[:n], target[n:])
    assert lira.auc > 0.85 and global_threshold.auc < 0.65
    assert lira.tpr_at(0.01) > 5 * 0.01, "far more members found than false alarms at 1% FPR"


@pytest.mark.parametrize(
    ("target", "shadows", "message"),
    [
        ([1.0, 2.0], np.zeros((3, 3)), r"shadows must be \(models, 2\)"),
        ([1.0, 2.0], np.zeros((1, 2)), "at least 2 shadow models"),
        ([1.0, 2.0], np.full((2, 2), np.inf), "non-finite"),
    ],
)
def test_lira_refuses_bad_input(target, shadows, message):
    with pytest.raises(ValueError, match=message):
        lira_offline(target, shadows)


def test_roc_of_perfect_and_of_useless_scores():
    perfect = attack_roc([5.0, 6.0, 7.0], [1.0, 2.0])
    assert perfect.auc == 1.0 and perfect.tpr_at(0.0) == 1.0
    useless = attack_roc(np.arange(100.0), np.arange(100.0))
    assert useless.auc == pytest.approx(0.5) and useless.tpr_at(0.0) == 0.0
    mixed = attack_roc([4.0, 2.0], [3.0, 1.0])  # ranking: member, non-member, member, non-member
    assert mixed.auc == pytest.approx(0.75) and mixed.tpr_at(0.0) == 0.5 and mixed.tpr_at(0.5) == 1.0
    with pytest.raises(ValueError, match=r"fpr must be in \[0, 1\]"):
        mixed.tpr_at(1.5)


def test_two_folds_suffice_and_two_examples_per_group_make_two_folds():
    """Known answer: in each of the two folds the attack learns from one member (loss 0 or 1) and one non-member
    (10 or 11), and calls the other pair right."""
    assert simple_mia([0.0, 1.0], [10.0, 11.0], folds=2) == 1.0
    with pytest.raises(ValueError, match="3-fold cross-validation needs at least 3 examples per group"):
        simple_mia([0.0, 1.0], [10.0, 11.0], folds=3)


def _unbalanced():
    rng = np.random.default_rng(4)
    return rng.normal(0, 1, 40), rng.normal(0.7, 1, 400)


def test_the_seed_chooses_which_of_the_larger_group_are_kept():
    """Cutting the larger group first with balanced_sample(seed) leaves the result unchanged, for that seed only."""
    members, nonmembers = _unbalanced()
    for seed in (0, 1):
        _, kept = balanced_sample(members, nonmembers, seed=seed)
        assert simple_mia(members, kept, seed=seed) == simple_mia(members, nonmembers, seed=seed)
        retain, test = (
            nonmembers,
            members,
        )  # mia_efficacy cuts the retain set (its first argument) to the test set's size
        kept, _ = balanced_sample(retain, test, seed=seed)
        assert mia_efficacy(kept, test, retain, seed=seed) == mia_efficacy(retain, test, retain, seed=seed)
    assert simple_mia(members, nonmembers) == simple_mia(members, nonmembers, seed=0), "the default seed is 0"
    assert mia_efficacy(nonmembers, members, nonmembers) == mia_efficacy(nonmembers, members, nonmembers, seed=0)
    assert np.array_equal(balanced_sample(members, nonmembers)[1], balanced_sample(members, nonmembers, seed=0)[1])


def test_an_roc_counts_its_members_and_non_members():
    roc = attack_roc([5.0, 6.0, 7.0], [1.0, 2.0])
    assert (roc.n_members, roc.n_nonmembers) == (3, 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: simple_mia([1.0, np.inf, np.nan] * 2, [1.0] * 9), "members holds 4 non-finite values"),
        (lambda: attack_roc([], [1.0]), "member scores is empty"),
        (
            lambda: attack_roc([1.0], [[1.0]]),
            "non-member scores must be one value per example (a 1-d array), got shape (1, 1)",
        ),
        (lambda: mia_efficacy([1.0], [2.0], []), "forget is empty"),
        (lambda: lira_offline([], np.zeros((2, 0))), "target confidences is empty"),
        (
            lambda: lira_offline([1.0], [["a"], ["b"]]),
            "shadows must be real numbers (an array, tensor or list of them), got [['a'], ['b']]",
        ),
        (
            lambda: lira_offline([1.0, 2.0], np.zeros((1, 2))),
            "fitting a Gaussian per example needs at least 2 shadow models, got 1",
        ),
        (lambda: lira_offline([1.0], np.full((2, 1), np.nan)), "shadow confidences hold non-finite values"),
    ],
)
def test_each_refusal_names_its_argument(call, message):
    with pytest.raises((ValueError, TypeError), match=f"^{re.escape(message)}$"):
        call()
