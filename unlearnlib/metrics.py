"""Every measure of unlearning in one row: accuracy, membership inference, forgetting quality, cost.

``evaluate(unlearned, retrained, original, data, request)`` judges unlearned
models against models retrained without the forget set (the gold standard) and
returns a pandas Series with the columns every notebook and the leaderboard
report.  Each model is run once over the forget, retain and test sets
(:func:`model_outputs`); pass those outputs instead of models to reuse them
across many calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import validate
from .checkpoints import TrainedModel, network
from .forget import ForgetRequest
from .forgetting_quality import forgetting_quality, unlearning_score
from .imagedata import ImageData
from .mia import attack_roc, lira_offline, mia_efficacy, simple_mia
from .train import Outputs, predict


@dataclass(frozen=True)
class ModelOutputs:
    """One model's outputs on the forget set, the retain set and the test set of a request."""

    forget: Outputs
    retain: Outputs
    test: Outputs


Model = nn.Module | TrainedModel | ModelOutputs


def model_outputs(model: nn.Module | TrainedModel, data: ImageData, request: ForgetRequest) -> ModelOutputs:
    """Run ``model`` once over the forget, retain and test sets of ``request``."""
    if not isinstance(request, ForgetRequest):
        raise TypeError(f"request must be a ForgetRequest, got {type(request).__name__}")
    request.check_fits(data)
    net = network(model)
    return ModelOutputs(
        forget=predict(net, data, data.train.subset(request.forget)),
        retain=predict(net, data, data.train.subset(request.retain)),
        test=predict(net, data, data.test),
    )


def _outputs(model: Model, data: ImageData, request: ForgetRequest) -> ModelOutputs:
    return model if isinstance(model, ModelOutputs) else model_outputs(model, data, request)


def nonmember_mask(test_labels: torch.Tensor, request: ForgetRequest, same_class: bool | None = None) -> torch.Tensor:
    """Which test examples serve as non-members against the forget set.

    For a whole-class request (or ``same_class=True``) only test examples of the
    forgotten class: otherwise an attack tells members from non-members by their
    class alone, even on a model that never saw the class.
    """
    if same_class is None:
        same_class = request.kind == "class"
    if not same_class:
        return torch.ones(len(test_labels), dtype=torch.bool)
    if request.target_class is None:
        raise ValueError("same-class non-members need a request for a whole class")
    mask = test_labels.cpu() == request.target_class
    if not mask.any():
        raise ValueError(f"the test set has no examples of class {request.target_class}")
    return mask


def simple_mia_of(
    outputs: ModelOutputs, request: ForgetRequest, *, same_class: bool | None = None, folds: int = 5, seed: int = 0
) -> float:
    """The simple loss-based MIA of one model: its forget set against (same-class, for class requests) test examples."""
    mask = nonmember_mask(outputs.test.labels, request, same_class)
    return simple_mia(outputs.forget.losses, outputs.test.losses[mask], folds=folds, seed=seed)


def accuracies(outputs: ModelOutputs) -> dict[str, float]:
    """Forget accuracy FA, unlearning accuracy UA = 1 − FA, retain accuracy RA and test accuracy TA."""
    forget = outputs.forget.accuracy
    return {
        "forget_accuracy": forget,
        "unlearn_accuracy": 1 - forget,
        "retain_accuracy": outputs.retain.accuracy,
        "test_accuracy": outputs.test.accuracy,
    }


def class_accuracies(outputs: ModelOutputs, request: ForgetRequest) -> dict[str, float]:
    """Test accuracy on the forgotten class and on the other classes (their images pooled), for a class request."""
    if request.kind != "class":
        raise ValueError("accuracy on the forgotten class needs a request for a whole class")
    right = outputs.test.predictions == outputs.test.labels
    in_class = outputs.test.labels == request.target_class
    return {
        "class_test_accuracy": right[in_class].float().mean().item(),
        "other_test_accuracy": right[~in_class].float().mean().item(),
    }


def forget_output_change(unlearned: Sequence[ModelOutputs], original: Sequence[ModelOutputs]) -> float:
    """How far a method moved the outputs on D_f, averaged over the (unlearned, original) pairs.

    Per pair: the mean |change| of the logit confidence log p_y − log(1 − p_y) over the forget examples.
    Doing nothing scores 0; it says how much moved, not in which direction.
    """
    if len(unlearned) != len(original) or not unlearned:
        raise ValueError(f"one unlearned model per original model: got {len(unlearned)} and {len(original)}")
    changes = [(u.forget.logit_confidences - o.forget.logit_confidences).abs() for u, o in zip(unlearned, original)]
    return float(np.mean([change.mean() for change in changes]))


def _per_model(outputs: ModelOutputs, request: ForgetRequest, folds: int, seed: int) -> dict[str, float]:
    values = accuracies(outputs)
    if request.kind == "class":
        values |= class_accuracies(outputs, request)
    too_few = len(outputs.forget.labels) < folds  # no k-fold attack on fewer members than folds
    values["mia"] = math.nan if too_few else simple_mia_of(outputs, request, folds=folds, seed=seed)
    values["mia_efficacy"] = mia_efficacy(
        outputs.retain.logit_confidences, outputs.test.logit_confidences, outputs.forget.logit_confidences, seed=seed
    )
    return values


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def _std(rows: list[dict[str, float]]) -> dict[str, float]:
    """Each measure's sample standard deviation over the models (NaN for one model)."""
    return {key: float(np.std([row[key] for row in rows], ddof=1)) if len(rows) > 1 else math.nan for key in rows[0]}


SPREAD = {
    "forget_accuracy": "forget_accuracy",
    "unlearn_accuracy": "unlearn_accuracy",
    "retain_accuracy": "retain_accuracy",
    "test_accuracy": "test_accuracy",
    "mia_unlearned": "mia",
    "mia_efficacy_unlearned": "mia_efficacy",
}
"""The row's per-model measures of the unlearned models (row column: per-model name) that get a ``_std``
column, their spread over the N models (seeds)."""


def _as_list(models: Model | Sequence[Model], what: str) -> list[Model]:
    items = list(models) if isinstance(models, Sequence) else [models]
    if not items:
        raise ValueError(f"no {what} models were given")
    return items


def lira_of(
    target: ModelOutputs, shadows: Sequence[ModelOutputs], request: ForgetRequest, *, same_class: bool | None = None
):
    """The offline LiRA on ``target``: forget set (members) against test examples (non-members).

    ``shadows`` are models trained without both (retrained models), whose
    logit-scaled confidences give each example's non-member distribution.
    Returns the attack's :class:`~unlearnlib.mia.AttackROC`.
    """
    mask = nonmember_mask(target.test.labels, request, same_class)

    def confidences(outputs: ModelOutputs) -> torch.Tensor:
        return torch.cat([outputs.forget.logit_confidences, outputs.test.logit_confidences[mask]])

    scores = lira_offline(confidences(target), torch.stack([confidences(s) for s in shadows]))
    n_forget = len(target.forget.labels)
    return attack_roc(scores[:n_forget], scores[n_forget:])


GAP_MEASURES = ("unlearn_accuracy", "retain_accuracy", "test_accuracy", "mia")
"""The measures whose mean absolute difference to the retrained model is the gap to the gold standard
(``gap_to_retrained``: the course's, with the simple MIA)."""
AVERAGE_GAP_MEASURES = ("unlearn_accuracy", "retain_accuracy", "test_accuracy", "mia_efficacy")
"""The same with MIA-efficacy (``average_gap``): the "average gap" of SalUn (Fan et al., ICLR 2024) and
the papers that follow it, in fractions where they print percentages."""

LABELS = {
    "epochs": "Epochs",
    "lr": "LR",
    "unlearn_accuracy": "UA",
    "retain_accuracy": "RA",
    "test_accuracy": "TA",
    "forgetting_quality": "F",
    "unlearning_score": "US",
    "mia_retrained": "GS",
    "mia_original": "MIA O",
    "mia_unlearned": "MIA U",
    "mia_efficacy_unlearned": "MIA-eff U",
    "mia_efficacy_retrained": "MIA-eff GS",
    "mia_efficacy_original": "MIA-eff O",
    "gap_to_retrained": "gap",
    "average_gap": "avg gap",
    "time_ratio": "time ratio",
}
"""The short label of each column of an :func:`evaluate` row that has one (GS: MIA of the gold-standard
retrained model); every table of rows, here and in the leaderboard, is labelled with these."""

SHORT_TABLE = (
    "epochs",
    "lr",
    "unlearn_accuracy",
    "retain_accuracy",
    "test_accuracy",
    "forgetting_quality",
    "unlearning_score",
    "mia_retrained",
    "mia_original",
    "mia_unlearned",
)
"""The columns of the course material's results tables, in order (hyperparameters first, when a row has them)."""


def _classes(values, what: str) -> torch.Tensor:
    """``values`` as a 1-d int64 CPU tensor of class numbers; a clear error naming ``what`` otherwise."""
    try:
        tensor = torch.as_tensor(values).cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{what} must be class numbers (a 1-d integer tensor), got {values!r:.60}: {err}") from None
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{what} must be class numbers (integers), got {tensor.dtype}")
    if tensor.dim() != 1:
        raise ValueError(f"{what} must be one class per image (1-d), got shape {tuple(tensor.shape)}")
    if len(tensor) and tensor.min() < 0:
        raise ValueError(f"{what} must be class numbers >= 0, got {int(tensor.min())}")
    return tensor.long()


def attack_success(predictions: torch.Tensor, labels: torch.Tensor, targets: dict[int, int]) -> float:
    """Attack success rate: the share of triggered images of an attacked class classified as its target.

    ``predictions`` are a model's classes for triggered images whose true classes
    are ``labels``; ``targets`` is the backdoor (attacked class to target class).
    Images of classes the backdoor does not attack are left out.
    """
    predictions, labels = _classes(predictions, "predictions"), _classes(labels, "labels")
    if predictions.shape != labels.shape:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("labels are empty: there are no triggered images to score")
    if not isinstance(targets, dict) or not targets:
        raise TypeError(f"targets must be a non-empty dict of attacked class -> target class, got {targets!r:.60}")
    targets = {
        validate.integer("targets (an attacked class)", s, minimum=0): validate.integer(
            "targets (a target class)", t, minimum=0
        )
        for s, t in targets.items()
    }
    target_of = torch.full((int(max(labels.max(), *targets)) + 1,), -1, dtype=torch.long)
    for source, target in targets.items():
        target_of[source] = target
    aimed = target_of[labels]
    attacked = aimed >= 0
    if not attacked.any():
        raise ValueError(f"none of the labels is an attacked class: targets attacks {sorted(targets)}")
    return (predictions[attacked] == aimed[attacked]).float().mean().item()


def evaluate(
    unlearned: Model | Sequence[Model],
    retrained: Model | Sequence[Model],
    original: Model | Sequence[Model],
    data: ImageData,
    request: ForgetRequest,
    *,
    seconds: float | None = None,
    retrain_seconds: float | None = None,
    name: str | None = None,
    hyperparameters: dict[str, object] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> pd.Series:
    """All measures of ``unlearned`` against ``retrained``, as one row.

    Each of ``unlearned``, ``retrained`` and ``original`` is a model (an
    ``nn.Module``, a cached :class:`TrainedModel` or its :class:`ModelOutputs`)
    or a list of them, one per seed.  Per-model measures are averaged over the
    list.  Forgetting quality and the unlearning score need N >= 3 unlearned and
    as many retrained models; LiRA needs 2 retrained models as shadows; where
    too few are given they are NaN.  The simple MIA (and so the gap) is NaN on
    a forget set of fewer than ``folds`` examples, too few for a ``folds``-fold
    cross-validated attack.  ``seconds`` is the unlearning run time;
    ``retrain_seconds`` defaults to the first retrained model's training time
    when it came from the checkpoint cache.  ``hyperparameters`` lead the row.

    Columns (fractions in [0, 1]): forget/unlearn/retain/test accuracy (for a
    class request also test accuracy on the class and on the other classes),
    ``mia_unlearned``, ``mia_retrained`` (GS), ``mia_original`` (simple MIA of
    each), ``mia_efficacy_unlearned``/``_retrained``/``_original``,
    ``lira_auc`` and ``lira_tpr_at_1%``/``_0.1%``, ``gap_to_retrained`` (mean
    absolute difference to the retrained models over UA, RA, TA and simple MIA),
    ``average_gap`` (the same over UA, RA, TA and MIA-efficacy, as SalUn
    reports it), ``forgetting_quality``, ``unlearning_score``, and for the
    unlearned models' per-model measures (:data:`SPREAD`) their standard
    deviation over the models, ``<column>_std`` (NaN for one model),
    ``n_models``, ``seconds``, ``retrain_seconds``, ``time_ratio``.
    """
    folds = validate.integer("folds", folds, minimum=2)
    seed = validate.seed("seed", seed)
    if not isinstance(request, ForgetRequest):
        raise TypeError(f"request must be a ForgetRequest, got {type(request).__name__}")
    unlearned_list = _as_list(unlearned, "unlearned")
    retrained_list = _as_list(retrained, "retrained")
    original_list = _as_list(original, "original")
    if retrain_seconds is None and isinstance(retrained_list[0], TrainedModel):
        retrain_seconds = retrained_list[0].train_seconds
    u_out = [_outputs(m, data, request) for m in unlearned_list]
    r_out = [_outputs(m, data, request) for m in retrained_list]
    o_out = [_outputs(m, data, request) for m in original_list]

    per_model = {
        which: [_per_model(out, request, folds, seed) for out in outs]
        for which, outs in (("u", u_out), ("r", r_out), ("o", o_out))
    }
    u, r, o = (_mean(per_model[which]) for which in "uro")

    row: dict[str, object] = dict(hyperparameters or {})
    row.update({key: u[key] for key in ("forget_accuracy", "unlearn_accuracy", "retain_accuracy", "test_accuracy")})
    if request.kind == "class":
        row.update({key: u[key] for key in ("class_test_accuracy", "other_test_accuracy")})
    row["mia_unlearned"] = u["mia"]
    row["mia_retrained"] = r["mia"]
    row["mia_original"] = o["mia"]
    row["mia_efficacy_unlearned"] = u["mia_efficacy"]
    row["mia_efficacy_retrained"] = r["mia_efficacy"]
    row["mia_efficacy_original"] = o["mia_efficacy"]
    spread = _std(per_model["u"])
    row.update({f"{column}_std": spread[measure] for column, measure in SPREAD.items()})

    if len(r_out) >= 2:
        rocs = [lira_of(target, r_out, request) for target in u_out]
        row["lira_auc"] = float(np.mean([roc.auc for roc in rocs]))
        row["lira_tpr_at_1%"] = float(np.mean([roc.tpr_at(0.01) for roc in rocs]))
        row["lira_tpr_at_0.1%"] = float(np.mean([roc.tpr_at(0.001) for roc in rocs]))
    else:
        row["lira_auc"] = row["lira_tpr_at_1%"] = row["lira_tpr_at_0.1%"] = math.nan

    row["gap_to_retrained"] = float(np.mean([abs(u[key] - r[key]) for key in GAP_MEASURES]))
    row["average_gap"] = float(np.mean([abs(u[key] - r[key]) for key in AVERAGE_GAP_MEASURES]))

    n_models = min(len(u_out), len(r_out))
    if n_models >= 3:
        quality = forgetting_quality(
            torch.stack([out.forget.logit_confidences for out in u_out[:n_models]]),
            torch.stack([out.forget.logit_confidences for out in r_out[:n_models]]),
        ).value
        row["forgetting_quality"] = quality
        row["unlearning_score"] = unlearning_score(
            quality, u["retain_accuracy"], r["retain_accuracy"], u["test_accuracy"], r["test_accuracy"]
        )
    else:
        row["forgetting_quality"] = row["unlearning_score"] = math.nan
    row["n_models"] = n_models

    row["seconds"] = math.nan if seconds is None else float(seconds)
    row["retrain_seconds"] = math.nan if retrain_seconds is None else float(retrain_seconds)
    row["time_ratio"] = row["seconds"] / row["retrain_seconds"] if row["retrain_seconds"] else math.nan
    return pd.Series(row, name=name)


def with_spread(mean: float, std: float, digits: int = 3) -> str:
    """``mean`` ± ``std`` as text, both to ``digits`` decimals: "0.803 ± 0.004"; "–" for a NaN mean, the mean
    alone for a NaN spread."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def short_table(rows: Sequence[pd.Series] | pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of :func:`evaluate` as the course material's table (Epochs, LR, UA, RA, TA, F, US, GS, MIA O, MIA U),
    then the columns ``extra`` (names of the rows' columns), each under its label in :data:`LABELS`."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if isinstance(extra, str):
        raise TypeError(f"extra must be a list of column names, got the string {extra!r}")
    missing = [c for c in extra if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the rows have no column {', '.join(map(repr, missing))}; they have {', '.join(frame.columns)}"
        )
    columns = [c for c in SHORT_TABLE if c in frame.columns] + [c for c in extra if c not in SHORT_TABLE]
    return frame[columns].rename(columns=LABELS)
