"""Exact unlearning: retrain from scratch without the forget set, or retrain only the last k blocks (EU-k)."""

from __future__ import annotations

from torch import nn

from ..checkpoints import TrainedModel, get_or_train
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..train import TrainConfig
from ..validate import check_counts, check_positive
from ..validate import seed as check_seed
from .networks import last_blocks, reinitialise, working_copy
from .registry import register
from .training import fine_tune


def training_recipe(method: str, model: nn.Module | TrainedModel, config: TrainConfig | None) -> TrainConfig:
    """The recipe a method that trains from scratch uses: ``config``, or else the one the cached ``model`` was
    trained with; a clear error naming ``method`` when there is neither."""
    if config is None:
        if not isinstance(model, TrainedModel):
            raise ValueError(f"{method} needs the training config: pass config=, or a TrainedModel as the model")
        config = model.config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    return config


@register("retrain", family="exact", summary="train from scratch on the retain set: the gold standard")
def retrain(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> TrainedModel:
    """The model trained with ``config`` on the retain set only, through the checkpoint cache.

    ``config`` defaults to the one ``model`` was trained with (``model`` must then be a
    :class:`TrainedModel`).  ``model`` itself is not used: retraining forgets by never seeing D_f.
    The result is the cached :class:`TrainedModel`, with the time its training took (calling
    ``unlearn.retrain`` gives its network, as every method does).

    Taught in notebook 05, section 1 (What "exact" means).
    """
    return get_or_train(training_recipe("retrain", model, config), data, request.retain, progress=progress)


@register("eu_k", family="exact", summary="re-initialise the last k blocks and train them on the retain set")
def eu_k(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    k: int = 4,
    epochs: int = 5,
    lr: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Exact unlearning of the last ``k`` blocks (Goel et al., 2022).

    The first blocks keep their trained weights (they saw D_f, so the result is
    exact only for the blocks retrained); the last ``k`` are drawn afresh from
    ``seed`` and trained on D_r for ``epochs`` with a one-cycle schedule peaking at ``lr``.

    Taught in notebook 05, section 2 (EU-k: retrain only the last k blocks).
    """
    check_counts(k=k, epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    check_seed("seed", seed)
    unlearned = working_copy(model)
    tail = last_blocks(unlearned, k)
    reinitialise(tail, seed)
    return fine_tune(
        unlearned,
        data,
        request.retain,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        trainable=tail,
        schedule="onecycle",
        seed=seed,
        desc=f"EU-{k}",
        progress=progress,
    )
