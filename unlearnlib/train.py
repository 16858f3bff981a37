"""The training loop and evaluation.

SGD with momentum (or Adam), a one-cycle or cosine learning-rate schedule,
optional label smoothing; on CUDA, mixed precision and channels_last.  Data
comes from device-resident tensors through :mod:`unlearnlib.batching`.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import guard, validate
from .imagedata import ImageData, Split, check_indices
from .models import ARCHITECTURES, build_model

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "cosine", "constant")
WATCHED = 256
"""Test examples :func:`fit` watches after each epoch but the last: a fixed, evenly spaced subset, so that the
curve costs little beside training; the last epoch is evaluated on the whole test set."""


def check_optimizer_and_schedule(optimizer: object, schedule: object) -> None:
    """Refuse an optimizer not in :data:`OPTIMIZERS` or a schedule not in :data:`SCHEDULES`, naming the choices."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model, given its training data: the training recipe.

    A profile holds one as a template, with no ``dataset``
    (:attr:`unlearnlib.profiles.Profile.recipe`); the session fills in the dataset and
    the seed (:attr:`unlearnlib.session.Setup.recipe`).  ``dataset`` is the name of
    the data it trains on (``data.info.name``), which need not be one of the
    datasets the course reads: a test may train on data it makes, under its own name.
    """

    dataset: str | None = None
    """The name of the data it trains on; ``None`` in a profile's template, which trains nothing."""
    arch: str = "resnet18"
    width: int = 64
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    """Peak learning rate (one-cycle) or initial learning rate (cosine, constant)."""
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: bool = True
    seed: int = 0
    """Seeds the initial weights, the batch order and the augmentation."""

    def __post_init__(self) -> None:
        if self.dataset is not None and not (
            isinstance(self.dataset, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.dataset)
        ):
            raise ValueError(
                f"dataset must be a name of letters, digits, '-', '_' and '.' (it names the cached files), "
                f"got {self.dataset!r}"
            )
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown model {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        check_optimizer_and_schedule(self.optimizer, self.schedule)
        validate.check_counts(width=self.width, epochs=self.epochs, batch_size=self.batch_size)
        validate.positive("lr", self.lr)
        validate.non_negative("weight_decay", self.weight_decay)
        validate.interval("momentum", self.momentum, 0.0, 1.0, low_open=False, high_open=True)
        validate.interval("label_smoothing", self.label_smoothing, 0.0, 1.0, low_open=False, high_open=True)
        if not isinstance(self.augment, bool):
            raise TypeError(f"augment must be True or False, got {self.augment!r}")
        validate.seed("seed", self.seed)

    def check_trains(self, data: ImageData) -> None:
        """Refuse to train on ``data`` with a template (no dataset named) or with a recipe for other data."""
        if self.dataset is None:
            raise ValueError(
                "this recipe names no dataset (it is a profile's template): use setup.recipe, "
                "or dataclasses.replace(recipe, dataset=data.info.name)"
            )
        if self.dataset != data.info.name:
            raise ValueError(f"config is for {self.dataset} but the data is {data.info.name}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}")
        return cls(**values)


@dataclass
class History:
    """Per-epoch training curves."""

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    """On :data:`WATCHED` test examples after each epoch but the last, on the whole test set after the last."""
    test_accuracy: list[float] = field(default_factory=list)
    """As ``test_loss``: the last entry is the whole test set's accuracy."""
    seconds: list[float] = field(default_factory=list)
    """Training time of each epoch, evaluation excluded."""

    def append(self, **values: float) -> None:
        for name, value in values.items():
            getattr(self, name).append(value)

    def to_dict(self) -> dict[str, list]:
        return asdict(self)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.to_dict()).set_index("epoch")


@dataclass
class Outputs:
    """A model's outputs on a split: logits, labels and per-example losses (on the CPU)."""

    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def losses(self) -> torch.Tensor:
        """Per-example cross-entropy loss."""
        return F.cross_entropy(self.logits, self.labels, reduction="none")

    @property
    def logit_confidences(self) -> torch.Tensor:
        """Per-example logit-scaled confidence log p_y − log(1 − p_y) of the true class y.

        Computed as z_y − logsumexp_{j≠y} z_j from the logits z, which stays exact where p_y rounds to 1.
        """
        logits = self.logits.double()
        true = logits.gather(1, self.labels[:, None]).squeeze(1)
        others = logits.scatter(1, self.labels[:, None], float("-inf"))
        return true - others.logsumexp(1)

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(1)

    @property
    def accuracy(self) -> float:
        return (self.predictions == self.labels).float().mean().item()

    def confusion_matrix(self, num_classes: int) -> np.ndarray:
        """Counts ``[true class, predicted class]``."""
        flat = self.labels * num_classes + self.predictions
        return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes).numpy()

    def per_class_accuracy(self, num_classes: int) -> np.ndarray:
        matrix = self.confusion_matrix(num_classes)
        with np.errstate(invalid="ignore"):
            return np.diag(matrix) / matrix.sum(1)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on GPUs that have it, float16 on older ones, nothing (full precision) on CPU."""
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


@torch.no_grad()
def predict(model: nn.Module, data: ImageData, split: Split, batch_size: int = 1024) -> Outputs:
    """Run ``model`` (in eval mode) over ``split``; its mode is restored afterwards."""
    was_training = model.training
    model.eval()
    dtype = autocast_dtype(data.device)
    logits = []
    for x, _ in data.batches(split, batch_size, channels_last=data.device.type == "cuda"):
        with torch.autocast(data.device.type, dtype=dtype, enabled=dtype is not None):
            logits.append(model(x).float())
    model.train(was_training)
    out = torch.cat(logits) if logits else torch.empty(0, data.info.num_classes)
    return Outputs(out.cpu(), split.labels.cpu())


class Stepper:
    """Steps of an optimizer and its learning-rate schedule, in mixed precision on CUDA.

    ``optimizer`` is ``"sgd"`` (Nesterov momentum) or ``"adam"`` (AdamW);
    ``schedule`` is ``"onecycle"`` (peak ``lr`` a quarter of the way through
    ``steps``), ``"cosine"`` or ``"constant"``.  Under float16 autocast a
    gradient scaler keeps small gradients from vanishing.  With ``clip_norm``,
    the gradient is rescaled to at most that norm before each step; with
    ``unit_gradient``, to norm 1 whatever its size (normalised gradient descent:
    each step moves the weights by ``lr``, even where the gradient nearly vanishes).

    It also guards against divergence (:mod:`unlearnlib.guard`): the steps are
    ``epochs`` epochs of equal length, and a non-finite loss or non-finite weights
    stop the run with a :class:`~unlearnlib.guard.Diverged` error that names the
    run (``name`` and ``hyperparameters``, by default those announced by
    :func:`unlearnlib.guard.running`, else the stepper's own settings) and the
    epoch.  On the CPU the loss is checked at every step; on a GPU a finiteness
    flag accumulates on the device and is read once per epoch, so the guard adds
    no synchronisation per step.  The weights are checked at the end of each epoch.
    """

    def __init__(
        self,
        parameters,
        device: torch.device,
        *,
        steps: int,
        lr: float,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        schedule: str = "constant",
        clip_norm: float | None = None,
        unit_gradient: bool = False,
        epochs: int = 1,
        name: str | None = None,
        hyperparameters: dict[str, object] | None = None,
        role: str | None = None,
    ):
        check_optimizer_and_schedule(optimizer, schedule)
        lr = validate.positive("lr", lr)
        steps = validate.integer("steps", steps, minimum=0)
        epochs = validate.integer("epochs", epochs, minimum=1)
        momentum = validate.interval("momentum", momentum, 0.0, 1.0, low_open=False, high_open=True)
        weight_decay = validate.non_negative("weight_decay", weight_decay)
        if clip_norm is not None:
            clip_norm = validate.positive("clip_norm", clip_norm)
        if clip_norm is not None and unit_gradient:
            raise ValueError("give clip_norm or unit_gradient, not both")
        steps = max(steps, epochs)
        if steps % epochs:
            raise ValueError(f"{steps} steps do not divide into {epochs} epochs of equal length")
        self.epochs = epochs
        self.steps_per_epoch = steps // epochs
        self.taken = 0
        """Steps taken so far."""
        announced = guard.current()
        if name is None and announced is not None:
            name, hyperparameters = announced if hyperparameters is None else (announced[0], hyperparameters)
        self.run = guard.describe(
            name or "training",
            hyperparameters
            if hyperparameters is not None
            else dict(optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay, schedule=schedule),
        )
        self.role = role
        parameters = list(parameters)
        self.parameters = parameters
        self.clip_norm = clip_norm
        self.unit_gradient = unit_gradient
        if optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=momentum > 0
            )
        else:
            self.optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
        if schedule == "onecycle":
            self.schedule: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer,
                max_lr=lr,
                total_steps=steps,
                pct_start=0.25,
                anneal_strategy="linear",
                cycle_momentum=False,
            )
        elif schedule == "cosine":
            self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=steps)
        else:
            self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: 1.0)
        self.device = device
        self.dtype = autocast_dtype(device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self._finite = torch.ones((), dtype=torch.bool, device=device)
        """On a GPU: whether every loss of the current epoch so far was finite (read once per epoch)."""

    def autocast(self):
        """The context in which to run the forward pass (and the loss)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    @property
    def epoch(self) -> int:
        """The epoch (from 1) of the next step, or of the last one at the end of an epoch."""
        return min(self.epochs, max(1, -(-self.taken // self.steps_per_epoch)))

    def _diverged(self, what: str) -> guard.Diverged:
        whose = f"the {self.role}'s" if self.role else "the"
        return guard.Diverged(
            f"{self.run} diverged in epoch {self.epoch} of {self.epochs}: {whose} {what}. "
            "Lower the learning rate (or another step size) and run it again."
        )

    def check(self) -> None:
        """Raise :class:`~unlearnlib.guard.Diverged` if a loss so far, or a weight now, is not finite."""
        if not self._finite.item():
            raise self._diverged("loss became NaN or infinite")
        bad = guard.non_finite_entries({str(i): p for i, p in enumerate(self.parameters)})
        if bad:
            raise self._diverged(f"weights became NaN or infinite ({len(bad)} of {len(self.parameters)} tensors)")

    def step(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss``, take an optimizer step, advance the schedule.

        Checks the loss (on the CPU at once, on a GPU at the end of the epoch) and,
        at the end of each epoch, the weights.
        """
        self.taken += 1
        finite = loss.detach().isfinite().all()
        if self.device.type == "cpu":
            if not finite:
                raise self._diverged(f"loss became {loss.detach().float().sum().item()}")
        else:
            self._finite &= finite
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_norm is not None or self.unit_gradient:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.clip_norm or float("inf"))
            if self.unit_gradient:
                for parameter in self.parameters:
                    if parameter.grad is not None:
                        parameter.grad.div_(norm.clamp(min=1e-12))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if self.taken % self.steps_per_epoch == 0:
            self.check()

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.schedule.get_last_lr()[0]


def fit(
    model: nn.Module,
    data: ImageData,
    config: TrainConfig,
    indices: torch.Tensor | None = None,
    *,
    progress: bool = True,
) -> History:
    """Train ``model`` in place on the training examples at ``indices`` (all when ``None``).

    Returns per-epoch curves, with the test set evaluated after every epoch (only watched: nothing is chosen
    by it): a fixed sample of :data:`WATCHED` test examples, and the whole test set after the last epoch.  Where
    the test set is withheld (retraining run as an unlearning method, which may not see it),
    the test columns are NaN.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a network (an nn.Module), got {type(model).__name__}")
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData, got {type(data).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if indices is not None and len(torch.as_tensor(indices)) == 0:
        raise ValueError("cannot train on an empty set of examples")
    if indices is not None:
        check_indices(indices, len(data.train), "training indices")  # the order given is kept: it fixes the batches
    split = data.train if indices is None else data.train.subset(indices)
    if len(split) < 2:
        raise ValueError(f"training needs at least 2 examples (batch norm needs a batch), got {len(split)}")
    device = data.device
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(split) // config.batch_size)
    stepper = Stepper(
        model.parameters(),
        device,
        steps=steps_per_epoch * config.epochs,
        epochs=config.epochs,
        lr=config.lr,
        optimizer=config.optimizer,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        schedule=config.schedule,
        name=f"training {config.arch} on {config.dataset}",
        hyperparameters={k: v for k, v in config.to_dict().items() if k not in ("dataset", "arch")},
    )
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augmentation = data.info.augmentation if config.augment else None
    history = History()
    watched = None if data.test_withheld else _watched(data.test)
    epochs = tqdm(range(1, config.epochs + 1), desc="training", unit="epoch", disable=not progress)
    for epoch in epochs:
        model.train()
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        lr = stepper.lr
        for x, y in data.batches(
            split,
            config.batch_size,
            shuffle=True,
            augmentation=augmentation,
            generator=generator,
            drop_last=True,
            channels_last=cuda,
        ):
            with stepper.autocast():
                logits = model(x)
                loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            stepper.step(loss)
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        if cuda:
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        test = None if watched is None else predict(model, data, data.test if epoch == config.epochs else watched)
        train_loss = loss_sum.item() / seen
        history.append(
            epoch=epoch,
            lr=lr,
            train_loss=train_loss,
            train_accuracy=correct.item() / seen,
            test_loss=math.nan if test is None else test.losses.mean().item(),
            test_accuracy=math.nan if test is None else test.accuracy,
            seconds=seconds,
        )
        epochs.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{math.nan if test is None else test.accuracy:.3f}")
    return history


def _watched(test: Split) -> Split:
    """The test examples watched after each epoch but the last: at most :data:`WATCHED`, evenly spaced."""
    if len(test) <= WATCHED:
        return test
    return test.subset(torch.linspace(0, len(test) - 1, WATCHED, device=test.device).round().long())


def new_model(config: TrainConfig, data: ImageData) -> nn.Module:
    """A freshly initialised network for ``config`` and ``data``, its weights fixed by ``config.seed``."""
    return build_model(
        config.arch,
        num_classes=data.info.num_classes,
        in_channels=data.info.channels,
        width=config.width,
        seed=config.seed,
    ).to(data.device)
