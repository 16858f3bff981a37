import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearnlib import guard
from unlearnlib.guard import Diverged
from unlearnlib.train import Outputs, Stepper, TrainConfig, fit, new_model, predict

QUICK = TrainConfig(dataset="digits", arch="resnet18", width=8, epochs=6, batch_size=64, lr=0.05)


def test_a_small_resnet_learns_digits_well_above_chance(digits):
    model = new_model(QUICK, digits)
    history = fit(model, digits, QUICK, progress=False)
    test = predict(model, digits, digits.test)
    assert test.accuracy > 0.9, f"chance is 0.1; got {test.accuracy:.3f}"
    assert history.train_loss[-1] < history.train_loss[0] / 5
    assert history.test_accuracy[-1] == pytest.approx(test.accuracy)
    assert len(history.epoch) == QUICK.epochs and all(s > 0 for s in history.seconds)


def test_training_is_reproducible_on_the_cpu(digits):
    config = dataclasses.replace(QUICK, epochs=1)
    indices = torch.arange(0, 600)
    states = []
    for _ in range(2):
        model = new_model(config, digits)
        fit(model, digits, config, indices, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = new_model(dataclasses.replace(config, seed=1), digits)
    fit(other, digits, dataclasses.replace(config, seed=1), indices, progress=False)
    assert not torch.equal(other.fc.weight, states[0]["fc.weight"])


def test_training_uses_only_the_given_examples(digits):
    config = dataclasses.replace(QUICK, epochs=1, lr=0.5, augment=False)
    model = new_model(config, digits)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    only_zeros = (digits.train.labels == 0).nonzero().squeeze(1)
    fit(model, digits, config, only_zeros, progress=False)
    assert not torch.equal(model.fc.weight, original["fc.weight"])
    predictions = predict(model, digits, digits.test).predictions
    assert (predictions == 0).float().mean() > 0.9, "a model shown only zeros predicts zeros"


def test_evaluation_gives_per_example_losses_and_counts(digits):
    model = new_model(QUICK, digits)
    result = predict(model, digits, digits.test, batch_size=100)
    assert result.logits.shape == (len(digits.test), 10)
    x = (digits.test.images.float() / 255 - digits.mean[:, None, None]) / digits.std[:, None, None]
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(x), digits.test.labels, reduction="none")
    assert torch.allclose(result.losses, expected, atol=1e-5)
    matrix = result.confusion_matrix(10)
    assert matrix.sum() == len(digits.test)
    assert np.isclose(np.trace(matrix) / matrix.sum(), result.accuracy)


def test_evaluation_restores_the_training_mode(digits):
    model = new_model(QUICK, digits).train()
    predict(model, digits, digits.test)
    assert model.training


def test_evaluation_arithmetic_on_a_hand_made_case():
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 0.0], [0.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 1])
    result = Outputs(logits, labels)
    assert result.predictions.tolist() == [0, 1, 0, 0]
    assert result.accuracy == 0.5
    assert result.confusion_matrix(2).tolist() == [[1, 0], [2, 1]]
    assert np.allclose(result.per_class_accuracy(2), [1.0, 1 / 3])
    assert result.losses[3].item() == pytest.approx(np.log(2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(dataset="../elsewhere"), "dataset must be a name of letters"),
        (dict(arch="vgg"), "unknown model"),
        (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'.*sgd, adam"),
        (dict(schedule="step"), "unknown schedule"),
        (dict(lr=-0.1), "lr must be positive"),
        (dict(epochs=0), "epochs must be positive"),
        (dict(label_smoothing=1.0), "label_smoothing"),
    ],
)
def test_bad_training_configs_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(QUICK, **options)


def test_training_on_no_examples_is_refused(digits):
    with pytest.raises(ValueError, match="empty"):
        fit(new_model(QUICK, digits), digits, QUICK, torch.tensor([], dtype=torch.long), progress=False)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_other_optimizers_and_schedules_run(digits, schedule):
    config = dataclasses.replace(QUICK, epochs=1, optimizer="adam", lr=1e-3, schedule=schedule, label_smoothing=0.1)
    history = fit(new_model(config, digits), digits, config, torch.arange(200), progress=False)
    assert np.isfinite(history.train_loss[0])


def _step_sizes(steps: int, **options) -> list[float]:
    """The learning rate of each of ``steps`` plain SGD steps on the loss w: each step moves w by -lr_t."""
    weight = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
    stepper = Stepper([weight], torch.device("cpu"), steps=steps, momentum=0.0, weight_decay=0.0, **options)
    sizes = []
    for _ in range(steps):
        before = weight.item()
        stepper.step(weight * 1.0)
        sizes.append(before - weight.item())
    return sizes


def test_each_schedule_gives_its_learning_rate_at_every_step():
    """Known answers: constant; cosine, lr (1 + cos(pi t / T)) / 2; one-cycle, a linear warm-up from lr / 25 to
    lr over the first quarter of the steps, then a linear fall to lr / 25 / 10^4 at the last step."""
    lr, steps = 0.4, 8
    assert _step_sizes(steps, lr=lr, schedule="constant") == pytest.approx([lr] * steps, rel=1e-5)
    cosine = [lr * (1 + np.cos(np.pi * t / steps)) / 2 for t in range(steps)]
    assert _step_sizes(steps, lr=lr, schedule="cosine") == pytest.approx(cosine, rel=1e-5)
    start, end, peak = lr / 25, lr / 25 / 1e4, steps // 4 - 1
    one_cycle = [
        start + (lr - start) * t / peak if t <= peak else lr + (end - lr) * (t - peak) / (steps - 1 - peak)
        for t in range(steps)
    ]
    assert _step_sizes(steps, lr=lr, schedule="onecycle") == pytest.approx(one_cycle, rel=1e-5)


def test_adam_steps_by_the_learning_rate_in_each_coordinate_sgd_by_the_gradient():
    """Known answer: Adam's first step is lr * m / sqrt(v) = lr * sign(g) (bias-corrected, eps aside); SGD's, lr * g."""
    gradient = torch.tensor([1.0, -2.0, 0.5, 3.0])
    moves = {}
    for optimizer in ("sgd", "adam"):
        weights = torch.nn.Parameter(torch.zeros(4))
        stepper = Stepper(
            [weights], torch.device("cpu"), steps=1, lr=0.01, momentum=0.0, weight_decay=0.0, optimizer=optimizer
        )
        stepper.step((gradient * weights).sum())
        moves[optimizer] = -weights.detach()
    assert torch.allclose(moves["sgd"], 0.01 * gradient)
    assert torch.allclose(moves["adam"], 0.01 * gradient.sign(), rtol=1e-5)


def test_training_uses_the_configs_optimizer_and_schedule(digits, monkeypatch):
    from unlearnlib import train

    seen = []

    class Recording(Stepper):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(train, "Stepper", Recording)
    config = dataclasses.replace(QUICK, epochs=1, optimizer="adam", lr=1e-3, schedule="cosine", momentum=0.5)
    fit(new_model(config, digits), digits, config, torch.arange(128), progress=False)
    assert seen[0]["optimizer"] == "adam" and seen[0]["schedule"] == "cosine"
    assert seen[0]["lr"] == 1e-3 and seen[0]["momentum"] == 0.5 and seen[0]["weight_decay"] == config.weight_decay


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_unit_gradient_steps_move_the_weights_by_the_learning_rate_whatever_the_gradient(scale):
    weights = torch.nn.Parameter(torch.zeros(4))
    direction = torch.tensor([1.0, -2.0, 0.5, 3.0])
    stepper = Stepper(
        [weights], torch.device("cpu"), steps=3, lr=0.1, momentum=0.0, weight_decay=0.0, unit_gradient=True
    )
    stepper.step(scale * (direction * weights).sum())
    torch.testing.assert_close(weights.detach(), -0.1 * direction / direction.norm())


def test_clipping_and_unit_gradients_are_exclusive():
    with pytest.raises(ValueError, match="not both"):
        Stepper(
            [torch.nn.Parameter(torch.zeros(1))],
            torch.device("cpu"),
            steps=1,
            lr=0.1,
            clip_norm=1.0,
            unit_gradient=True,
        )


def test_diverging_training_stops_naming_the_run_its_settings_and_the_epoch(digits):
    config = dataclasses.replace(QUICK, epochs=3, lr=1e6, schedule="constant")
    with pytest.raises(Diverged, match=r"training resnet18 on digits \(.*lr=1000000.0.*\) diverged in epoch 1 of 3"):
        fit(new_model(config, digits), digits, config, torch.arange(200), progress=False)


def test_the_stepper_checks_the_weights_at_the_end_of_each_epoch():
    weights = torch.nn.Parameter(torch.zeros(2))
    with guard.running("my method", {"lr": 0.1}):
        stepper = Stepper([weights], torch.device("cpu"), steps=4, epochs=2, lr=0.1, momentum=0.0)
    stepper.step((weights * torch.tensor([1.0, 2.0])).sum())
    with torch.no_grad():
        weights[0] = float("inf")  # the loss of the next step is finite: only the epoch's end sees it
    with pytest.raises(Diverged, match=r"my method \(lr=0.1\) diverged in epoch 1 of 2: the weights"):
        stepper.step(weights[1] * 2)
    with pytest.raises(ValueError, match="do not divide into 3 epochs"):
        Stepper([weights], torch.device("cpu"), steps=4, epochs=3, lr=0.1)


def test_on_a_gpu_the_loss_is_checked_once_per_epoch_without_a_sync_per_step():
    weights = torch.nn.Parameter(torch.zeros(2))
    stepper = Stepper([weights], torch.device("cpu"), steps=6, epochs=2, lr=0.1, momentum=0.0, weight_decay=0.0)
    stepper.device = torch.device("cuda")  # the GPU's path (a flag kept on the device), taken here on CPU tensors
    stepper.step(weights.sum())
    stepper.step(weights.sum())
    stepper.step(weights.sum())  # the end of epoch 1: all finite
    stepper.step(weights.sum() * float("nan"))  # not seen yet: no read of the device in the middle of an epoch
    stepper.step(weights.sum())
    with pytest.raises(Diverged, match=r"training \(optimizer='sgd', lr=0.1.*\) diverged in epoch 2 of 2: the loss"):
        stepper.step(weights.sum())


def test_training_watches_a_fixed_test_sample_after_each_epoch_and_the_whole_test_set_after_the_last(
    digits, monkeypatch
):
    import unlearnlib.train as train_module

    assert len(digits.test) > train_module.WATCHED, "the digits' test split is larger than the watched sample"
    watched = []
    real_predict = train_module.predict

    def recording(model, data, split, **options):
        watched.append(split.labels.clone())
        return real_predict(model, data, split, **options)

    monkeypatch.setattr(train_module, "predict", recording)
    config = dataclasses.replace(QUICK, epochs=3)
    model = new_model(config, digits)
    history = fit(model, digits, config, progress=False)
    assert [len(labels) for labels in watched] == [train_module.WATCHED] * 2 + [len(digits.test)]
    assert torch.equal(watched[0], watched[1]), "the same sample after every epoch"
    assert history.test_accuracy[-1] == pytest.approx(real_predict(model, digits, digits.test).accuracy)
