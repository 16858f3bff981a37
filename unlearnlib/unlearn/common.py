"""What the unlearning methods share: copying and freezing networks, checks, and the fine-tuning loop."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from .. import validate
from ..checkpoints import TrainedModel, network
from ..imagedata import ImageData, Split
from ..models import blocks
from ..train import Stepper
from ..validate import check_counts, check_positive


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


def subsample(indices: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A seeded random ``fraction`` of ``indices`` (at least one), sorted."""
    validate.check_fraction("fraction", fraction)
    seed = validate.seed("seed", seed)
    count = max(1, round(fraction * len(indices)))
    order = torch.randperm(len(indices), generator=torch.Generator().manual_seed(seed))[:count]
    return indices[order].sort().values


def batches_per_epoch(n: int, batch_size: int) -> int:
    """The batches in one pass over ``n`` examples, the last one possibly short (at least 1)."""
    return max(1, -(-n // batch_size))


def cycle(data: ImageData, split: Split, batch_size: int, generator: torch.Generator):
    """Shuffled batches of ``split`` without end, reshuffled at each pass."""
    while True:
        yield from data.batches(split, batch_size, shuffle=True, generator=generator)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher ‖ student) between the softened output distributions, times T² (Hinton et al., 2015)."""
    t = temperature
    return (
        F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), log_target=True, reduction="batchmean")
        * t
        * t
    )


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


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s parameters, by name."""
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


def fine_tune(
    model: nn.Module,
    data: ImageData,
    indices: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    trainable: list[nn.Module] | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
    schedule: str = "cosine",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    desc: str = "fine-tuning",
    progress: bool = True,
) -> nn.Module:
    """Train ``model`` in place with cross-entropy (plus ``penalty(model)``) on the training examples at ``indices``.

    SGD over ``epochs`` passes; only ``trainable`` blocks when given.  Returns ``model`` in eval mode.
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr)
    seed = validate.seed("seed", seed)
    split = data.train.subset(indices)
    parameters = train_only(model, trainable)
    stepper = Stepper(
        parameters,
        data.device,
        steps=batches_per_epoch(len(split), batch_size) * epochs,
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
    )
    generator = torch.Generator(device=data.device).manual_seed(seed)
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress, leave=False):
        for x, y in data.batches(split, batch_size, shuffle=True, generator=generator):
            with stepper.autocast():
                loss = F.cross_entropy(model(x), y)
                if penalty is not None:
                    loss = loss + penalty(model)
            stepper.step(loss)
    return model.eval()


def diagonal_fisher(model: nn.Module, data: ImageData, split: Split, batch_size: int = 64) -> dict[str, torch.Tensor]:
    """The diagonal of the empirical Fisher information of ``model`` on ``split``: E[(∂ log p(y|x, θ) / ∂θ_i)²].

    Per-example gradients come from ``torch.func`` (``vmap`` of ``grad``), with the network in eval mode.
    """
    was_training = model.training
    model.eval()
    parameters = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def log_likelihood(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (params, buffers), (x[None],))
        return -F.cross_entropy(logits, y[None])

    per_example = vmap(grad(log_likelihood), in_dims=(None, 0, 0))
    fisher = {name: torch.zeros_like(p) for name, p in parameters.items()}
    for x, y in data.batches(split, batch_size):
        for name, g in per_example(parameters, x, y).items():
            fisher[name] += g.pow(2).sum(0)
    model.train(was_training)
    return {name: value / len(split) for name, value in fisher.items()}
