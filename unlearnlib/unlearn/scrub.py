"""SCRUB: a student, started from the original model (its teacher), moves away from it on the forget set and
stays close to it on the retain set, in alternating max and min steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .. import validate
from ..checkpoints import TrainedModel
from ..forget import ForgetRequest
from ..imagedata import ImageData
from ..train import Stepper
from ..validate import check_counts, check_positive, non_negative
from ..validate import seed as check_seed
from .networks import frozen_copy, working_copy
from .registry import register
from .training import batches_per_epoch, distillation_loss


@register(
    "scrub",
    family="state-of-the-art",
    summary="SCRUB: a student moves away from the original on the forget set, stays close on the retain set",
)
def scrub(
    model: nn.Module | TrainedModel,
    request: ForgetRequest,
    data: ImageData,
    *,
    epochs: int = 3,
    max_epochs: int = 1,
    lr: float = 0.01,
    alpha: float = 1.0,
    gamma: float = 1.0,
    temperature: float = 4.0,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> nn.Module:
    """SCRUB (Kurmanji et al., NeurIPS 2023).

    The student starts as a copy of the original (the teacher). With d(x) the
    distillation divergence KL(teacher ‖ student) at ``temperature``, each of
    ``epochs`` epochs is

    - for the first ``max_epochs`` only, a *max* pass over D_f: SGD on −d(x), moving
      the student's outputs on D_f away from the teacher's;
    - a *min* pass over D_r: SGD on ``alpha`` · d(x) + ``gamma`` · CE(x), keeping
      what the teacher knows and fitting D_r.

    Stopping the max steps early (``max_epochs`` < ``epochs``) is the paper's rule
    against the student drifting so far on D_f that it stands out to an attack;
    ``max_epochs`` = 0 leaves only the min steps.

    Taught in notebook 11, section 5 (Distillation: SCRUB).
    """
    check_counts(epochs=epochs, batch_size=batch_size)
    max_epochs = validate.integer("max_epochs", max_epochs, minimum=0)
    check_positive(lr=lr, temperature=temperature)
    alpha, gamma = non_negative("alpha", alpha), non_negative("gamma", gamma)
    check_seed("seed", seed)
    student = working_copy(model).train()
    teacher = frozen_copy(model)
    retain, forget = data.train.subset(request.retain), data.train.subset(request.forget)
    max_steps = batches_per_epoch(len(forget), batch_size)
    min_steps = batches_per_epoch(len(retain), batch_size)
    steps = min_steps * epochs + max_steps * min(max_epochs, epochs)
    stepper = Stepper(student.parameters(), data.device, steps=steps, lr=lr, schedule="constant")
    generator = torch.Generator(device=data.device).manual_seed(seed)
    for epoch in tqdm(range(epochs), desc="SCRUB", unit="epoch", disable=not progress, leave=False):
        passes = [(forget, True)] if epoch < max_epochs else []
        for split, away in [*passes, (retain, False)]:
            for x, y in data.batches(split, batch_size, shuffle=True, generator=generator):
                with torch.no_grad():
                    teacher_logits = teacher(x).float()
                with stepper.autocast():
                    logits = student(x)
                divergence = distillation_loss(logits.float(), teacher_logits, temperature)
                if away:
                    stepper.step(-divergence)
                else:
                    stepper.step(alpha * divergence + gamma * F.cross_entropy(logits.float(), y))
    return student.eval()
