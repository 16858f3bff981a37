"""Membership inference: can an attacker tell the forget set from data the model never saw?

Three attacks, from the cheapest to the strongest:

- :func:`simple_mia`, the NeurIPS 2023 unlearning challenge's starting-kit
  attack: a logistic regression on the per-example loss, members against an
  equal number of non-members, scored by stratified k-fold cross-validated
  accuracy (0.5: indistinguishable);
- :func:`mia_efficacy`: an attack fit on retain (members) against test
  (non-members) and applied to the forget set; the share of forget examples it
  calls non-members;
- :func:`lira_offline`, the offline likelihood-ratio attack: per example, a
  Gaussian fit to the logit-scaled confidence of shadow models trained without
  it; a target model's confidence far above that fit betrays membership.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from . import validate

ArrayLike = np.ndarray | torch.Tensor | list


def _feature(values: ArrayLike, what: str) -> np.ndarray:
    array = validate.real_array(what, values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one value per example (a 1-d array), got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{what} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def _attack_model() -> object:
    # Standardising first makes the attack independent of the feature's scale: losses of 1e-3 and of 1 alike.
    return make_pipeline(StandardScaler(), LogisticRegression())


def _labelled(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The attack's training set: one feature column, label 1 for members and 0 for non-members."""
    x = np.concatenate([members, nonmembers])[:, None]
    return x, np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])


def balanced_sample(members: ArrayLike, nonmembers: ArrayLike, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both groups cut to the size of the smaller one by a seeded random draw (the attacker's prior is then ½)."""
    members, nonmembers = _feature(members, "members"), _feature(nonmembers, "nonmembers")
    seed = validate.seed("seed", seed)
    n = min(len(members), len(nonmembers))
    generator = np.random.default_rng(seed)
    return (
        members[np.sort(generator.permutation(len(members))[:n])],
        nonmembers[np.sort(generator.permutation(len(nonmembers))[:n])],
    )


def simple_mia(members: ArrayLike, nonmembers: ArrayLike, *, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a logistic regression telling ``members`` from ``nonmembers`` by one feature.

    The feature is normally the per-example loss.  The larger group is first cut
    to the size of the smaller one, so 0.5 means the groups cannot be told apart
    and 1.0 means they are perfectly separable.
    """
    folds = validate.integer("folds", folds)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    members, nonmembers = balanced_sample(members, nonmembers, seed)
    if len(members) < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {folds} examples per group "
            f"(members and nonmembers), got {len(members)}"
        )
    x, y = _labelled(members, nonmembers)
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(_attack_model(), x, y, cv=splits, scoring="accuracy").mean())


def mia_efficacy(retain: ArrayLike, test: ArrayLike, forget: ArrayLike, *, seed: int = 0) -> float:
    """Share of the forget set called non-member by an attack fit on ``retain`` (members) against ``test``.

    Each argument is one feature value per example (normally the logit-scaled
    confidence).  The retain sample is cut to the test set's size so the attack
    has no prior towards "member".  Higher means the forget set looks more like
    unseen data: 0 for a forget set the model remembers as well as its retain set.
    """
    retain, test, forget = _feature(retain, "retain"), _feature(test, "test"), _feature(forget, "forget")
    members, nonmembers = balanced_sample(retain, test, seed)
    attack = _attack_model().fit(*_labelled(members, nonmembers))
    return float((attack.predict(forget[:, None]) == 0).mean())


def lira_offline(target: ArrayLike, shadows: ArrayLike, *, global_variance: bool = True) -> np.ndarray:
    """Offline likelihood-ratio attack scores: how far each confidence lies above its non-member distribution.

    ``target`` holds one logit-scaled confidence per example from the attacked
    model; ``shadows`` (shadow models × examples) the same from models trained
    *without* those examples.  Per example, a Gaussian N(μ, σ²) is fit to the
    shadow values and the score is z = (target − μ) / σ: the one-sided test
    Pr[N(μ, σ²) < target] = Φ(z) grows with it, so higher z means "member".
    With few shadow models, per-example variances are noisy; ``global_variance``
    (the default) uses one variance pooled over all examples instead.
    """
    target = _feature(target, "target confidences")
    shadows = validate.real_array("shadows", shadows)
    if shadows.ndim != 2 or shadows.shape[1] != len(target):
        raise ValueError(f"shadows must be (models, {len(target)}) to match the target, got shape {shadows.shape}")
    if shadows.shape[0] < 2:
        raise ValueError(f"fitting a Gaussian per example needs at least 2 shadow models, got {shadows.shape[0]}")
    if not np.isfinite(shadows).all():
        raise ValueError("shadow confidences hold non-finite values")
    mean = shadows.mean(0)
    if global_variance:
        std = np.full_like(mean, np.sqrt(shadows.var(0, ddof=1).mean()))
    else:
        std = shadows.std(0, ddof=1)
    return (target - mean) / np.maximum(std, 1e-8)


@dataclass(frozen=True)
class AttackROC:
    """How well scores separate members (positives) from non-members: the ROC curve and its summaries."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    n_members: int
    n_nonmembers: int

    def tpr_at(self, fpr: float) -> float:
        """The best true-positive rate at a false-positive rate of at most ``fpr``.

        Meaningful only down to 1 / (number of non-members): below that, it is the rate at zero false positives.
        """
        validate.interval("fpr", fpr, 0.0, 1.0, low_open=False)
        return float(self.tpr[self.fpr <= fpr].max())


def attack_roc(member_scores: ArrayLike, nonmember_scores: ArrayLike) -> AttackROC:
    """The ROC curve of an attack scoring members higher than non-members, with its AUC."""
    members = _feature(member_scores, "member scores")
    nonmembers = _feature(nonmember_scores, "non-member scores")
    scores, y = _labelled(members, nonmembers)
    scores = scores[:, 0]
    fpr, tpr, _ = roc_curve(y, scores)
    return AttackROC(fpr, tpr, float(roc_auc_score(y, scores)), len(members), len(nonmembers))
