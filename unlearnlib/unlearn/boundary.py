"""Boundary unlearning of a whole class: shrink the class's decision region onto its neighbours, or expand the
output space with a shadow class that takes the class's images and is then pruned."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import TrainedModel, network
from ..forget import ForgetRequest
from ..imagedata import ImageData, Split
from ..validate import check_counts, check_positive
from ..validate import seed as check_seed
from .networks import working_copy
from .registry import register
from .training import fine_tune


def nearest_other_labels(model: nn.Module, data: ImageData, split: Split, step: float, batch_size: int):
    """For each image of ``split``, the class the model gives it after one signed-gradient step of size ``step``
    up its loss (FGSM, in normalised input space), and where that is still its own class, the model's
    most likely other class: the neighbour across the nearest decision boundary."""
    model.eval()
    found = []
    for x, y in data.batches(split, batch_size):
        x = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        with torch.no_grad():
            attacked = model(x + step * gradient.sign())
            others = model(x).scatter(1, y[:, None], float("-inf")).argmax(1)
            label = attacked.argmax(1)
            found.append(torch.where(label == y, others, label))
    return torch.cat(found)


@register(
    "boundary_shrink",
    family="state-of-the-art",
    summary="Boundary Shrink: relabel the class's images with their nearest other class, fine-tune on them",
    kinds=("class",),
)
def boundary_shrink(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    step: float = 0.1,
    epochs: int = 5,
    lr: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Boundary Shrink (Chen et al., CVPR 2023).

    Each image of the class gets the label of its nearest neighbouring class, found by
    a one-step attack of size ``step`` on the original model
    (:func:`nearest_other_labels`); the network is then fine-tuned on the class's
    images with those labels alone (SGD at ``lr``, no weight decay, batch-norm
    statistics as trained), which moves the class's region onto its neighbours' and
    leaves the other classes' boundaries where they were.  Uses D_f only.

    The rate is the knob: on Fashion-MNIST (smoke profile, T-shirts) the default
    leaves 4% of the class's test images and costs the other classes 6 points, and
    three times it costs them 13; on the digits it takes ten times the default to forget.

    Taught in notebook 11, section 7 (Decision boundaries: Boundary Shrink and Boundary Expanding).
    """
    check_positive(step=step, lr=lr)
    check_counts(epochs=epochs, batch_size=batch_size)
    check_seed("seed", seed)
    unlearned = working_copy(model)
    labels = nearest_other_labels(unlearned, data, data.train.subset(request.forget), step, batch_size)
    return fine_tune(
        unlearned,
        data,
        request.forget,
        labels=labels,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=0.0,
        batch_statistics=False,
        seed=seed,
        desc="Boundary Shrink",
        progress=progress,
    )


class WithShadowClass(nn.Module):
    """A network of the course (``features`` and a linear ``fc``) with one more output: the shadow class."""

    def __init__(self, network: nn.Module, shadow: nn.Linear):
        super().__init__()
        self.network = network
        self.shadow = shadow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.network.features(x)
        return torch.cat([self.network.fc(features), self.shadow(features)], 1)


@register(
    "boundary_expand",
    family="state-of-the-art",
    summary="Boundary Expanding: a shadow class takes the class's images, then is pruned",
    kinds=("class",),
)
def boundary_expand(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int = 5,
    lr: float = 1e-4,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Boundary Expanding (Chen et al., CVPR 2023).

    The classifier gets one more output, a shadow class (its weights drawn from
    ``seed``); the network is fine-tuned to put every image of the class in the shadow
    class (SGD at ``lr``, no weight decay, batch-norm statistics as trained), so that the class's region passes to it;
    then the shadow output is pruned, and the class's images fall to whichever class
    is next.  Uses D_f only; needs a network with ``features`` and a linear ``fc``
    classifier (the course's ResNets).

    As for :func:`boundary_shrink`, the rate is the knob: on Fashion-MNIST (smoke
    profile, T-shirts) the default leaves 11% of the class's test images and costs the
    other classes 5 points; on the digits it takes thirty times the default.

    Taught in notebook 11, section 7 (Decision boundaries: Boundary Shrink and Boundary Expanding).
    """
    check_positive(lr=lr)
    check_counts(epochs=epochs, batch_size=batch_size)
    check_seed("seed", seed)
    given = network(model)
    if not callable(getattr(given, "features", None)) or not isinstance(getattr(given, "fc", None), nn.Linear):
        raise TypeError(
            f"boundary_expand needs a network with a features() method and a linear classifier fc (the course's "
            f"ResNets), got {type(given).__name__}"
        )
    unlearned = working_copy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shadow = nn.Linear(unlearned.fc.in_features, 1).to(data.device)
    shadow_labels = torch.full((len(request.forget),), data.info.num_classes)
    fine_tune(
        WithShadowClass(unlearned, shadow),
        data,
        request.forget,
        labels=shadow_labels,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        weight_decay=0.0,
        batch_statistics=False,  # the batches hold one class: batch norm keeps its trained statistics
        seed=seed,
        desc="Boundary Expanding",
        progress=progress,
    )
    return unlearned.eval()
