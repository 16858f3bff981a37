"""Networks as the unlearning methods handle them: copies that leave the input alone, the last k blocks,
fresh weights for some of them, which parts train, and the distance of the weights to a reference."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from .. import validate
from ..checkpoints import TrainedModel, network
from ..models import blocks


def working_copy(model: nn.Module | TrainedModel) -> nn.Module:
    """A trainable deep copy of ``model``'s network: what a method changes, leaving its input untouched."""
    copied = copy.deepcopy(network(model))
    for parameter in copied.parameters():
        parameter.requires_grad_(True)
    return copied


def frozen_copy(model: nn.Module | TrainedModel) -> nn.Module:
    """A deep copy of ``model``'s network in eval mode with gradients off, for a teacher or a reference."""
    copied = copy.deepcopy(network(model)).eval()
    for parameter in copied.parameters():
        parameter.requires_grad_(False)
    return copied


def last_blocks(model: nn.Module, k: int) -> list[nn.Module]:
    """The last ``k`` blocks of ``model`` (see :func:`unlearnlib.models.blocks`)."""
    parts = blocks(model)
    try:
        k = validate.integer("k", k, minimum=1, maximum=len(parts))
    except ValueError:
        raise ValueError(f"k must be in 1..{len(parts)} for this network of {len(parts)} blocks, got {k}") from None
    return [module for _, module in parts[-k:]]


def reinitialise(modules: Iterable[nn.Module], seed: int) -> None:
    """Draw fresh initial weights for every layer in ``modules`` (a batch norm's reset also clears its statistics)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in modules:
            for layer in module.modules():
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()


def train_only(model: nn.Module, trainable: list[nn.Module] | None) -> list[nn.Parameter]:
    """Put ``model`` in training mode with gradients only for ``trainable`` (all of it when ``None``).

    Frozen parts go to eval mode, so that their batch-norm statistics stay as they were.
    Returns the parameters to optimise.
    """
    if trainable is None:
        model.train()
        return list(model.parameters())
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parameters = []
    for module in trainable:
        module.train()
        for parameter in module.parameters():
            parameter.requires_grad_(True)
            parameters.append(parameter)
    return parameters


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s parameters, by name."""
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def distance_squared(
    model: nn.Module, reference: dict[str, torch.Tensor], weights: dict[str, torch.Tensor] | None = None
):
    """Σ w_i (θ_i − θ*_i)² over ``model``'s parameters that require gradients (w = 1 without ``weights``)."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            square = (parameter - reference[name]).pow(2)
            total = total + (square * weights[name] if weights is not None else square).sum()
    return total
