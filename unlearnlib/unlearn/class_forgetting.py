"""Forgetting a whole class: Partially Blinded Unlearning, and the two baselines it is compared with,
Bad Teaching and UNSIR."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData, Split
from ..train import Stepper
from ..validate import check_counts, check_fraction, check_positive, non_negative
from ..validate import seed as check_seed
from .networks import distance_squared, frozen_copy, parameters_of, reinitialise, working_copy
from .registry import register
from .training import batches_per_epoch, diagonal_fisher, distillation_loss, fine_tune, subsample


@register(
    "pbu",
    family="class",
    summary="Partially Blinded Unlearning: part of the class, no retain data, Fisher and L2 anchors",
    kinds=("class",),
)
def pbu(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    available: float = 0.5,
    alpha: float = 1.0,
    beta: float = 10.0,
    gamma: float = 1.0,
    epochs: int = 60,
    lr: float = 0.003,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Partially Blinded Unlearning (Panda et al., 2024) of a whole class.

    Sees only a seeded share ``available`` of the class S_f and no retain data, and minimises

        α · mean log P(y | x, θ) over S_f  +  β · (θ − θ*)ᵀ F (θ − θ*)  +  γ · ‖θ − θ*‖²

    with θ* the original weights and F the diagonal empirical Fisher at θ* on S_f.
    The first term drives the class's likelihood down; the Fisher term keeps the
    weights that matter to the model's predictions where they were, the L2 term
    keeps all of them near.  F is scaled to a maximum of 1 (a rescaling of β).

    The steps are normalised: SGD with momentum 0.9 on the gradient rescaled to
    norm 1, so each step moves the weights by ``lr`` (cosine-annealed).  A
    confident model has p_y ≈ 1 on its class, where the gradient of log p_y all
    but vanishes and plain gradient steps stall against the two anchors; the
    first term is also unbounded below, so raw steps grow without limit once it
    gives way.  Only images still classified as y are pushed, and the run stops
    after ``epochs``, or after the first epoch in which every image it sees was
    already misclassified before its step: the class is forgotten, and
    descending further only harms the other classes.  Batch-norm statistics stay
    as trained: batches of one class would corrupt them.

    Taught in notebook 08, section 1 (Partially Blinded Unlearning).
    """
    check_fraction("available", available)
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(alpha=alpha, lr=lr)
    non_negative("beta", beta)
    non_negative("gamma", gamma)
    check_seed("seed", seed)
    seen = data.train.subset(subsample(request.forget, available, seed))
    unlearned = working_copy(model)
    anchor = parameters_of(unlearned)
    fisher = diagonal_fisher(unlearned, data, seen)
    scale = max(f.max() for f in fisher.values()).clamp(min=1e-30)
    fisher = {name: f / scale for name, f in fisher.items()}
    unlearned.eval()
    steps = batches_per_epoch(len(seen), batch_size) * epochs
    stepper = Stepper(
        unlearned.parameters(),
        data.device,
        steps=steps,
        epochs=epochs,
        lr=lr,
        weight_decay=0.0,
        schedule="cosine",
        momentum=0.9,
        unit_gradient=True,
    )
    generator = torch.Generator(device=data.device).manual_seed(seed)
    for _ in tqdm(range(epochs), desc="PBU", unit="epoch", disable=not progress, leave=False):
        still_right = 0
        for x, y in data.batches(seen, batch_size, shuffle=True, generator=generator):
            with stepper.autocast():
                logits = unlearned(x)
            right = logits.argmax(1) == y
            log_likelihood = -F.cross_entropy(logits.float(), y, reduction="none")
            loss = (
                alpha * (log_likelihood * right).sum() / len(y)
                + beta * distance_squared(unlearned, anchor, fisher)
                + gamma * distance_squared(unlearned, anchor)
            )
            stepper.step(loss)
            still_right += right.sum().item()
        if still_right == 0:
            break
    return unlearned.eval()


@register(
    "bad_teaching",
    family="class",
    summary="distil from the original on retain data and from a random network on forget data",
)
def bad_teaching(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int = 3,
    lr: float = 0.001,
    retain_fraction: float = 1.0,
    temperature: float = 1.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """Bad Teaching (Chundawat et al., 2023): a student, started from the original, learns from two teachers.

    On a seeded ``retain_fraction`` of D_r it distils the competent teacher (the
    original model), on D_f the incompetent one (a randomly initialised network of
    the same architecture), by KL divergence at ``temperature`` over mixed,
    shuffled batches; Adam at ``lr`` for ``epochs``.  The paper distils on 30% of
    D_r; on the course's small training sets the default is all of it, which keeps
    retain accuracy when D_f is a fifth of the data.

    Taught in notebook 08, section 2 (Bad Teaching and UNSIR).
    """
    check_fraction("retain_fraction", retain_fraction)
    check_counts(epochs=epochs, batch_size=batch_size)
    check_positive(lr=lr, temperature=temperature)
    check_seed("seed", seed)
    student = working_copy(model).train()
    competent = frozen_copy(model)
    incompetent = frozen_copy(model)
    reinitialise([incompetent], seed)
    incompetent.eval()
    indices = torch.cat([subsample(request.retain, retain_fraction, seed), request.forget])
    is_forget = torch.zeros(len(data.train), dtype=torch.bool)
    is_forget[request.forget] = True
    # The labels are replaced by "which teacher" flags, so that batches carry them along.
    images = data.train.subset(indices).images
    mixed = Split(images, is_forget[indices].long().to(images.device))
    steps = batches_per_epoch(len(mixed), batch_size) * epochs
    stepper = Stepper(
        student.parameters(), data.device, steps=steps, epochs=epochs, lr=lr, optimizer="adam", weight_decay=0.0
    )
    generator = torch.Generator(device=data.device).manual_seed(seed)
    for _ in tqdm(range(epochs), desc="bad teaching", unit="epoch", disable=not progress, leave=False):
        for x, forget_flag in data.batches(mixed, batch_size, shuffle=True, generator=generator):
            with torch.no_grad():
                teacher = torch.where(forget_flag[:, None].bool(), incompetent(x), competent(x)).float()
            with stepper.autocast():
                logits = student(x)
            stepper.step(distillation_loss(logits.float(), teacher, temperature))
    return student.eval()


def error_maximising_noise(
    model: nn.Module,
    target_class: int,
    shape: tuple[int, ...],
    *,
    steps: int,
    lr: float,
    norm_weight: float,
    seed: int,
    device: torch.device,
) -> torch.Tensor:
    """Inputs (in normalised pixel space) on which ``model`` is as wrong as it can be about ``target_class``.

    Maximises cross-entropy(model(N), target_class) − ``norm_weight`` · mean(N²) by Adam over ``steps``.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    noise = torch.randn(shape, generator=generator, device=device).requires_grad_(True)
    optimizer = torch.optim.Adam([noise], lr=lr)
    targets = torch.full((shape[0],), target_class, device=device)
    was_training = model.training
    model.eval()
    for _ in range(steps):
        loss = -F.cross_entropy(model(noise), targets) + norm_weight * noise.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.train(was_training)
    return noise.detach()


@register(
    "unsir",
    family="class",
    summary="UNSIR: learn error-maximising noise for the class, impair with it, repair on retain data",
    kinds=("class",),
)
def unsir(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    noise_count: int = 64,
    noise_steps: int = 50,
    noise_lr: float = 0.1,
    norm_weight: float = 0.1,
    impair_lr: float = 0.02,
    repair_lr: float = 0.01,
    repair_epochs: int = 2,
    retain_fraction: float = 1.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """UNSIR (Tarun et al., 2023) for a whole class: noise, impair, repair.

    1. **Noise**: ``noise_count`` inputs that maximise the frozen model's loss
       on the forgotten class (:func:`error_maximising_noise`);
    2. **impair**: one epoch of SGD at ``impair_lr`` on a seeded ``retain_fraction``
       of D_r, each batch joined by the noise labelled with the forgotten class;
    3. **repair**: ``repair_epochs`` at ``repair_lr`` on the same retain sample alone.

    It needs no forget images, only the class's label.  The paper impairs and
    repairs on a small sample of D_r; on the course's small training sets one
    epoch of such a sample is a handful of steps, which on an easily separated
    class (a digit) leaves part of it recognised, so the default is all of D_r.

    Taught in notebook 08, section 2 (Bad Teaching and UNSIR).
    """
    check_fraction("retain_fraction", retain_fraction)
    check_counts(noise_count=noise_count, noise_steps=noise_steps, repair_epochs=repair_epochs, batch_size=batch_size)
    check_positive(noise_lr=noise_lr, impair_lr=impair_lr, repair_lr=repair_lr)
    non_negative("norm_weight", norm_weight)
    check_seed("seed", seed)
    unlearned = working_copy(model)
    shape = (noise_count, data.info.channels, *data.train.images.shape[2:])
    noise = error_maximising_noise(
        unlearned,
        request.target_class,
        shape,
        steps=noise_steps,
        lr=noise_lr,
        norm_weight=norm_weight,
        seed=seed,
        device=data.device,
    )
    noise_labels = torch.full((noise_count,), request.target_class, device=data.device)
    sample = subsample(request.retain, retain_fraction, seed)
    split = data.train.subset(sample)
    unlearned.train()
    stepper = Stepper(
        unlearned.parameters(), data.device, steps=batches_per_epoch(len(split), batch_size), lr=impair_lr
    )
    generator = torch.Generator(device=data.device).manual_seed(seed)
    for x, y in tqdm(
        data.batches(split, batch_size, shuffle=True, generator=generator),
        desc="UNSIR impair",
        disable=not progress,
        leave=False,
    ):
        with stepper.autocast():
            loss = F.cross_entropy(unlearned(torch.cat([x, noise])), torch.cat([y, noise_labels]))
        stepper.step(loss)
    return fine_tune(
        unlearned,
        data,
        sample,
        epochs=repair_epochs,
        lr=repair_lr,
        batch_size=batch_size,
        schedule="constant",
        seed=(seed + 1) % 2**32,
        desc="UNSIR repair",
        progress=progress,
    )
