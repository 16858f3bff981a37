"""The unlearning methods: their contract, their effect on small digits tasks, and their errors."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unlearnlib import datasets, imagedata, unlearn
from unlearnlib.checkpoints import get_or_train
from unlearnlib.forget import ForgetRequest, class_forget, random_forget
from unlearnlib.guard import Diverged
from unlearnlib.models import ResNet9, blocks, build_model
from unlearnlib.train import TrainConfig, fit, new_model, predict
from unlearnlib.unlearn import influence_removal
from unlearnlib.unlearn.boundary import nearest_other_labels
from unlearnlib.unlearn.cache import get_or_unlearn
from unlearnlib.unlearn.fisher_forgetting import noise_variance
from unlearnlib.unlearn.negative_gradient import negative_gradient_plus_loss
from unlearnlib.unlearn.random_labels import relabelled, saliency_mask
from unlearnlib.unlearn.sisa import Ensemble, Layout, ensemble, places, retrained_share, stage_plan, train_shards
from unlearnlib.unlearn.sparsity import decaying, l1_norm
from unlearnlib.unlearn.synaptic_dampening import dampening
from unlearnlib.unlearn.training import diagonal_fisher, distillation_loss

CONFIG = TrainConfig(dataset="digits", arch="resnet9", width=8, epochs=15, batch_size=32, lr=0.05, augment=False)
FAST = {"batch_size": 32, "progress": False}
CLASS_ONLY = {"pbu", "unsir", "ssd", "boundary_shrink", "boundary_expand"}


class Task(NamedTuple):
    """A small unlearning task: the data, a forget request, the model trained on all of it and, where a
    test needs it, the model retrained without the forget set."""

    data: imagedata.ImageData
    request: ForgetRequest
    original: nn.Module
    retrained: nn.Module | None = None


def trained(data: imagedata.ImageData, indices: torch.Tensor | None = None) -> nn.Module:
    model = new_model(CONFIG, data)
    fit(model, data, CONFIG, indices, progress=False)
    return model.eval()


def accuracy(model: nn.Module, data: imagedata.ImageData, indices: torch.Tensor) -> float:
    return predict(model, data, data.train.subset(indices)).accuracy


@pytest.fixture(scope="module")
def noisy():
    """400 digits, 15% of them relabelled at random, so that a model must memorise to fit them all; a random
    20% forget request, the original model and the model retrained without D_f."""
    data = datasets.load("digits", n_train=400, n_test=300, device="cpu")
    generator = torch.Generator().manual_seed(0)
    labels = data.train.labels.clone()
    flip = torch.randperm(len(labels), generator=generator)[: len(labels) * 15 // 100]
    labels[flip] = (labels[flip] + torch.randint(1, 10, (len(flip),), generator=generator)) % 10
    data = dataclasses.replace(data, train=imagedata.Split(data.train.images, labels))
    request = random_forget(len(labels), fraction=0.2, seed=0)
    return Task(data, request, trained(data), trained(data, request.retain))


@pytest.fixture(scope="module")
def clean():
    """400 digits, a request for class 3 and the original model."""
    data = datasets.load("digits", n_train=400, n_test=300, device="cpu")
    original = trained(data)
    return Task(data, class_forget(data.train.labels, 3, data.info), original)


def per_class(model: nn.Module, data: imagedata.ImageData) -> torch.Tensor:
    return torch.as_tensor(predict(model, data, data.test).per_class_accuracy(data.info.num_classes))


EXACT = {"retrain", "sisa"}
"""The methods exact by construction: each is tested weight for weight against its definition, not for its share
of the gap (and SISA's model, an ensemble of shards, is not of the original's architecture)."""


@pytest.mark.parametrize("name", [m.name for m in unlearn.methods() if m.name not in EXACT])
def test_a_method_leaves_its_input_alone_and_returns_the_same_architecture(name, noisy, clean):
    method = unlearn.get(name)
    data, request, original, _ = clean if name in CLASS_ONLY else noisy
    before = {key: value.clone() for key, value in original.state_dict().items()}
    result = method(original, request, data, **FAST)
    assert result is not original and type(result) is type(original) and not result.training
    assert all(torch.equal(before[key], value) for key, value in original.state_dict().items())
    after = result.state_dict()
    assert list(after) == list(before) and all(after[key].shape == before[key].shape for key in before)
    assert any(not torch.equal(before[key], after[key]) for key in before), "the method changed nothing"


CLOSES = {
    "eu_k": 0.5,
    "influence": 0.2,
    "finetune": 0.5,
    "cf_k": 0.1,
    "finetune_l2": 0.4,
    "adversarial": 0.08,
    "bad_teaching": 0.2,
    "gradient_ascent": 0.05,
    "neggrad_plus": 0.15,
    "random_labels": 0.3,
    "salun": 0.3,
    "l1_sparse": 0.3,
    "scrub": 0.1,
    "fisher": 0.06,
}
"""The least share of the forget-accuracy gap (original minus retrained) each method closes here, at its defaults
but for :data:`ON_DIGITS`.

About half of what each closed when measured (one thread): EU-k 0.96, influence 0.39, fine-tune 0.98,
CF-k 0.22, fine-tune with the L2 pull 0.80, adversarial 0.17, Bad Teaching 0.46; and (torch 2.15) GA 0.11,
NegGrad+ 0.33, RL 0.57, SalUn 0.57, ℓ1-sparse 0.63, SCRUB 0.22, Fisher forgetting 0.13 (at α = 3e-7), with
defaults chosen on Fashion-MNIST, where larger steps wreck the model (GA at a rate of 0.01 left 3% test accuracy).
On this task the gap is 0.68 (0.91 to 0.24) over 80 forget images, so the smallest bound, 0.05, still asks for 3 or
more of them to move.
"""


def test_every_random_method_has_a_measured_bound():
    assert set(CLOSES) == {m.name for m in unlearn.methods("random")} - EXACT


@pytest.mark.parametrize("name", sorted(CLOSES))
def test_on_a_random_forget_set_a_method_closes_its_share_of_the_gap_to_retraining(name, noisy):
    data, request, original, retrained = noisy
    result = unlearn.get(name)(original, request, data, **FAST, **ON_DIGITS.get(name, {}))
    fa_original, fa_retrained = accuracy(original, data, request.forget), accuracy(retrained, data, request.forget)
    fa = accuracy(result, data, request.forget)
    assert fa_original - fa_retrained > 0.5, "the task must leave something to forget"
    closed = (fa_original - fa) / (fa_original - fa_retrained)
    assert CLOSES[name] < closed < 1.3, f"{name} closed {closed:.2f} of the forget-accuracy gap"
    cost = 0.05 if name == "fisher" else 0.02  # noise falls on the weights D_r needs too: measured 0.022
    assert accuracy(result, data, request.retain) > accuracy(original, data, request.retain) - cost


NEAR_ZERO = {
    "pbu": (0.08, 0.2),
    "bad_teaching": (0.45, 0.45),
    "unsir": (0.05, 0.07),
    "ssd": (0.05, 0.07),
    "boundary_shrink": (0.05, 0.07),
    "boundary_expand": (0.05, 0.07),
}
"""Per class method, the most accuracy it may leave on the forget set (41 images) and on the class's test images
(31). Measured (one thread, torch 2.15, scikit-learn 1.9): PBU 0.024 and 0.129, UNSIR 0 and 0, SSD 0 and 0,
Boundary Shrink 0 and 0, Boundary Expanding 0 and 0. Bad Teaching
distils a random network's near-uniform outputs on the class, so its argmax there is left to chance: over seeds
0-3 it left 0.02-0.37 and 0.10-0.29 (and 0.024 and 0.032 at seed 0 in an earlier environment, where the original
scored 0.935 rather than 0.903 on the class's tests).  The original scores 1.0 and 0.90, so a method that does
nothing fails by far."""


ON_DIGITS = {"boundary_shrink": {"lr": 1e-3}, "boundary_expand": {"lr": 3e-3}, "fisher": {"alpha": 3e-7}}
"""Settings other than the defaults for the digits tasks: the boundary methods' rates and Fisher forgetting's α were
chosen on Fashion-MNIST, whose gradients are larger; at their defaults they hardly move the digits' class 3 or D_f
(Fisher forgetting at α = 1e-7 closes 0.02 of the gap here)."""


@pytest.mark.parametrize("name", sorted(NEAR_ZERO))
def test_class_methods_forget_the_class_and_keep_the_others(name, clean):
    data, request, original, _ = clean
    result = unlearn.get(name)(original, request, data, **FAST, **ON_DIGITS.get(name, {}))
    on_forget, on_class_tests = NEAR_ZERO[name]
    assert accuracy(result, data, request.forget) <= on_forget
    others = torch.arange(data.info.num_classes) != request.target_class
    before, after = per_class(original, data), per_class(result, data)
    assert after[request.target_class] <= on_class_tests
    assert after[others].mean() > before[others].mean() - 0.05, (before[others].mean(), after[others].mean())
    assert after[others].min() > 0.7, f"no other class is wrecked (measured at least 0.83): {after[others].min()}"


def test_retrain_is_the_cached_model_trained_on_the_retain_set(digits):
    config = dataclasses.replace(CONFIG, epochs=1)
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    original = get_or_train(config, digits, progress=False)
    result = unlearn.retrain(original, request, digits, progress=False)
    cached = get_or_train(config, digits, request.retain, progress=False)
    assert cached.from_cache and cached.path.exists(), "retrain trained and stored the model that is looked up here"
    assert all(torch.equal(a, b) for a, b in zip(result.state_dict().values(), cached.model.state_dict().values()))
    with pytest.raises(ValueError, match="needs the training config"):
        unlearn.retrain(original.model, request, digits)


def test_retraining_through_the_cache_of_unlearned_models_is_the_trained_model_with_its_training_time(digits):
    config = dataclasses.replace(CONFIG, epochs=1)
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    original = get_or_train(config, digits, progress=False)
    retrained = get_or_unlearn(unlearn.retrain, original, request, digits)
    cached = get_or_train(config, digits, request.retain, progress=False)
    assert (retrained.path, retrained.seconds) == (cached.path, cached.train_seconds)
    assert retrained.seconds > 0 and retrained.method == "retrain"
    assert not list((original.path.parent / "unlearned").glob("*.pt")), "retraining is not stored a second time"


def test_a_method_on_a_cached_model_unlearns_with_the_batch_size_of_its_recipe(digits):
    config = dataclasses.replace(CONFIG, epochs=1, batch_size=48)
    original = get_or_train(config, digits, progress=False)
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    seen = []

    def record(model, request, data, *, batch_size=128, lr=0.1, progress=True):
        seen.append(batch_size)
        return copy.deepcopy(original.model)

    spy = dataclasses.replace(unlearn.get("finetune"), function=record)
    spy(original, request, digits)
    spy(original.model, request, digits)
    spy(original, request, digits, batch_size=16)
    assert seen == [48, 128, 16], "the recipe's batch size, the default for a bare network, and one given"
    assert spy.settings(original, {"lr": 0.5}) == {"batch_size": 48, "lr": 0.5}


def test_no_method_is_given_the_test_set_only_the_validation_split(noisy):
    data, request, original, _ = noisy
    given = []

    def record(model, request, data, *, batch_size=128, lr=0.1, progress=True):
        given.append(data)
        return copy.deepcopy(original)

    dataclasses.replace(unlearn.get("finetune"), function=record)(original, request, data)
    (seen,) = given
    assert seen.test_withheld and not data.test_withheld, "the caller's data keeps its test split"
    for use in (lambda: seen.test.images, lambda: len(seen.test), lambda: seen.test.subset([0])):
        with pytest.raises(
            imagedata.TestSetWithheld,
            match=r"^an unlearning method may not use the test set.*"
            r"data\.validation",
        ):
            use()
    assert seen.train is data.train and seen.validation is data.validation and seen.fingerprint == data.fingerprint


def test_adversarial_regularisation_takes_its_unseen_examples_from_the_validation_split(noisy):
    data, request, original, _ = noisy
    without = dataclasses.replace(data, validation=None)
    with pytest.raises(ValueError, match=r"^adversarial regularisation needs unseen examples, but digits has no"):
        unlearn.adversarial(original, request, without, epochs=1, **FAST)
    moved = dataclasses.replace(
        data, validation=imagedata.Split(data.validation.images.flip(3), data.validation.labels)
    )
    a = unlearn.adversarial(original, request, data, epochs=1, **FAST)
    b = unlearn.adversarial(original, request, moved, epochs=1, **FAST)
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_adversarial_regularisation_refuses_an_unknown_optimizer_before_any_work(noisy, monkeypatch):
    data, request, original, _ = noisy
    assert unlearn.get("adversarial").hyperparameters()["optimizer"] == "sgd"

    def no_work(*args, **kwargs):
        raise AssertionError("the method started work before checking its optimizer")

    monkeypatch.setattr("unlearnlib.unlearn.adversarial_regularisation.working_copy", no_work)
    for wrong in ("rmsprop", "Adam", None):
        with pytest.raises(ValueError, match=r"^unknown optimizer .* for the model; choose one of sgd, adam$"):
            unlearn.adversarial(original, request, data, optimizer=wrong, epochs=1, **FAST)


def test_adversarial_regularisation_on_adam_is_its_own_run_and_reproducible(noisy):
    data, request, original, _ = noisy
    runs = [
        unlearn.adversarial(original, request, data, optimizer=optimizer, lr=4e-3, epochs=1, **FAST)
        for optimizer in ("adam", "adam", "sgd")
    ]
    adam, again, sgd = (list(run.state_dict().values()) for run in runs)
    assert all(torch.equal(x, y) for x, y in zip(adam, again)), "the same seed gives the same weights"
    assert any(not torch.equal(x, y) for x, y in zip(adam, sgd)), "Adam is not SGD"


def test_the_first_adam_step_of_adversarial_regularisation_moves_every_weight_by_the_learning_rate(noisy):
    """A known answer: AdamW's first step moves a weight w by lr·wd·w (the decay) plus lr·g/(|g| + 1e-8), i.e. by
    the learning rate itself wherever the gradient g is not tiny (and not at all where g is 0, as behind a dead
    ReLU); SGD's moves are sized by g."""
    data, request, original, _ = noisy
    lr, decay = 1e-2, 5e-4
    one_step = {"epochs": 1, "batch_size": len(request.retain), "progress": False}  # D_r in one batch: one step
    before = [p.detach().clone() for p in original.parameters()]
    for optimizer in ("adam", "sgd"):
        after = list(unlearn.adversarial(original, request, data, optimizer=optimizer, lr=lr, **one_step).parameters())
        moves = torch.cat([(a.detach() - b * (1 - lr * decay)).abs().flatten() for a, b in zip(after, before)])
        moved = moves[moves > 0]
        by_lr = ((moved - lr).abs() < 1e-3 * lr).float().mean().item()
        assert len(moved) > 10_000, f"{optimizer}: only {len(moved)} weights moved"
        assert by_lr > 0.99 if optimizer == "adam" else by_lr < 0.01, f"{optimizer}: {by_lr:.3f} moved by lr"


def test_eu_k_redraws_exactly_the_last_k_blocks_and_cf_k_moves_only_them(noisy):
    data, request, original, _ = noisy
    parts = [name for name, _ in blocks(original)]
    for method in (unlearn.eu_k, unlearn.cf_k):
        result = method(original, request, data, k=2, epochs=1, **FAST)
        for (name, before), (_, after) in zip(blocks(original), blocks(result)):
            same = all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
            assert same == (name not in parts[-2:]), (method.__name__, name)


def test_eu_k_discards_the_last_blocks_weights_and_cf_k_starts_from_them(noisy):
    """EU-k re-draws its last k blocks, so what they held cannot matter: scrambling them first gives the same
    result, weight for weight. CF-k fine-tunes them from where they are, so scrambling changes its result."""
    data, request, original, _ = noisy
    scrambled = copy.deepcopy(original)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, block in blocks(scrambled)[-2:]:
            for tensor in [*block.parameters(), *block.buffers()]:
                if tensor.is_floating_point():
                    tensor.add_(torch.randn(tensor.shape, generator=generator).abs())
    for method, discards in ((unlearn.eu_k, True), (unlearn.cf_k, False)):
        results = [method(model, request, data, k=2, epochs=1, **FAST) for model in (original, scrambled)]
        states = [result.state_dict() for result in results]
        same = all(torch.equal(states[0][key], states[1][key]) for key in states[0])
        assert same == discards, method.__name__


def test_the_pull_keeps_fine_tuning_closer_to_the_original(noisy):
    data, request, original, _ = noisy

    def distance(model: nn.Module) -> float:
        return sum((a - b).pow(2).sum().item() for a, b in zip(model.parameters(), original.parameters()))

    plain = unlearn.finetune(original, request, data, epochs=2, **FAST)
    pulled = unlearn.finetune_l2(original, request, data, epochs=2, pull=1.0, **FAST)
    assert distance(pulled) < distance(plain)


def test_blocks_of_the_course_networks():
    resnet9 = build_model("resnet9", num_classes=10, in_channels=1, width=4)
    resnet18 = build_model("resnet18", num_classes=10, in_channels=1, width=4)
    assert [name for name, _ in blocks(resnet9)][-2:] == ["layer3.1", "fc"] and len(blocks(resnet9)) == 7
    assert len(blocks(resnet18)) == 10 and blocks(resnet18)[0][0] == "stem"
    for model in (resnet9, resnet18):
        owned = {id(p) for _, block in blocks(model) for p in block.parameters()}
        assert owned == {id(p) for p in model.parameters()}, "the blocks cover every parameter once"
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert [name for name, _ in blocks(mlp)] == ["0", "2"]


@pytest.mark.parametrize(
    "name", [m.name for m in unlearn.methods() if any(k.endswith("lr") for k in m.hyperparameters())]
)
def test_a_negative_learning_rate_is_refused(name, noisy, clean):
    data, request, original, _ = clean
    method = unlearn.get(name)
    rate = next(key for key in method.hyperparameters() if key.endswith("lr"))
    if not method.applies_to(request):
        data, request, original, _ = noisy
    with pytest.raises(ValueError, match=rate):
        method(original, request, data, **{rate: -0.1}, **FAST)


def test_bad_requests_and_hyperparameters_get_clear_errors(noisy, clean):
    data, request, original, _ = noisy
    with pytest.raises(ValueError, match="k must be in 1..7"):
        unlearn.eu_k(original, request, data, k=8)
    with pytest.raises(ValueError, match="k must be"):
        unlearn.cf_k(original, request, data, k=0)
    missing = ForgetRequest("class", clean.request.forget, clean.request.n_train, target_class=42)
    with pytest.raises(ValueError, match="class 42 does not exist in digits"):
        unlearn.pbu(clean.original, missing, clean.data)
    with pytest.raises(ValueError, match="unlearns class requests"):
        unlearn.get("pbu")(original, request, data)
    with pytest.raises(ValueError, match="unknown unlearning method 'nope'"):
        unlearn.get("nope")
    with pytest.raises(TypeError, match="no hyperparameter lr_typo"):
        unlearn.get("finetune")(original, request, data, lr_typo=0.1)
    with pytest.raises(ValueError, match="available must be in"):
        unlearn.pbu(clean.original, clean.request, clean.data, available=1.5)
    other = datasets.load("digits", n_train=100, device="cpu")
    with pytest.raises(ValueError, match="training split of 400"):
        unlearn.finetune(original, request, other)


def test_every_method_has_one_door_that_checks_the_request_before_the_method_runs(noisy, clean):
    data, request, original, _ = noisy
    for method in unlearn.methods():
        assert getattr(unlearn, method.name) is unlearn.get(method.name), method.name
    ran = []
    spy = dataclasses.replace(unlearn.get("pbu"), function=lambda *args, **kwargs: ran.append(args))
    other = datasets.load("digits", n_train=100, device="cpu")
    missing = ForgetRequest("class", clean.request.forget, clean.request.n_train, target_class=42)
    too_small = "the request is for a training split of 400 examples, this data has 100"
    for model, req, on, message in (
        (original, request, data, "pbu unlearns class requests, not a 'random' request"),
        (clean.original, clean.request, other, too_small),
        (clean.original, missing, clean.data, "class 42 does not exist in digits (classes 0..9)"),
    ):
        with pytest.raises(ValueError) as raised:
            spy(model, req, on)
        assert str(raised.value) == message
    assert not ran, "the method itself never ran"


def test_the_registry_lists_every_method_in_teaching_order():
    names = [m.name for m in unlearn.methods()]
    assert names[:3] == ["retrain", "eu_k", "influence"] and set(names) >= {
        "finetune",
        "cf_k",
        "finetune_l2",
        "adversarial",
        "pbu",
        "bad_teaching",
        "unsir",
    }
    assert "pbu" not in [m.name for m in unlearn.methods("random")]
    assert "adversarial" not in [m.name for m in unlearn.methods("class")]
    corrective = [m.name for m in unlearn.methods("corrective")]
    assert {"retrain", "eu_k", "finetune", "cf_k"} <= set(corrective) and not {"pbu", "unsir"} & set(corrective)
    assert unlearn.get("cf_k").hyperparameters()["k"] == 3
    with pytest.raises(ValueError, match="already registered"):
        unlearn.register("finetune", family="exact", summary="")(lambda model, request, data: model)


# --------------------------------------------------------------------------- divergence


@pytest.fixture(scope="module")
def untrained():
    """Digits, a random request and an untrained tiny network: divergence shows within the first steps."""
    data = datasets.load("digits", n_train=300, n_test=100, device="cpu")
    model = build_model("resnet9", num_classes=10, in_channels=1, width=4, seed=0).eval()
    return Task(data, random_forget(len(data.train), fraction=0.2, seed=0), model)


def test_a_diverging_method_stops_naming_itself_its_hyperparameters_and_the_epoch(untrained):
    data, request, model, _ = untrained
    with pytest.raises(
        Diverged, match=r"finetune \(epochs=5, lr=1000000.0, batch_size=64, seed=0\) diverged in epoch 1"
    ):
        unlearn.finetune(model, request, data, lr=1e6, batch_size=64, progress=False)
    with pytest.raises(FloatingPointError, match=r"eu_k \(k=2, epochs=2, lr=1e\+30.*epoch 1 of 2"):
        unlearn.get("eu_k")(model, request, data, k=2, epochs=2, lr=1e30, batch_size=64, progress=False)


def test_the_discriminator_of_adversarial_unlearning_is_guarded_too(untrained):
    data, request, model, _ = untrained
    with pytest.raises(Diverged, match=r"adversarial \(.*discriminator_lr=1e\+30.*\) diverged in epoch 1 of 1"):
        unlearn.adversarial(model, request, data, discriminator_lr=1e30, epochs=1, batch_size=64, progress=False)


def test_a_method_without_a_loop_never_returns_non_finite_weights(untrained, monkeypatch):
    data, request, model, _ = untrained
    monkeypatch.setattr(
        influence_removal, "removal_step", lambda retain, x, y: torch.full((retain.theta.numel(),), torch.nan)
    )
    with pytest.raises(Diverged, match=r"influence \(k=1, damping=0.01.*non-finite weights \(fc.weight, fc.bias\)"):
        unlearn.influence(model, request, data, progress=False)


def _optimal_head(features: torch.Tensor, labels: torch.Tensor, l2: float) -> torch.Tensor:
    """The minimum of mean cross-entropy + (l2/2)‖θ‖² over a linear head θ = [W, b] (float64 Newton, to 1e-12)."""
    features, classes = features.double(), int(labels.max()) + 1
    size = classes * (features.shape[1] + 1)

    def risk(theta: torch.Tensor) -> torch.Tensor:
        weight, bias = theta[: size - classes].view(classes, -1), theta[size - classes :]
        return F.cross_entropy(features @ weight.T + bias, labels) + l2 / 2 * theta.pow(2).sum()

    theta = torch.zeros(size, dtype=torch.float64)
    for _ in range(50):
        gradient = torch.autograd.functional.jacobian(risk, theta)
        if gradient.norm() < 1e-12:
            return theta
        theta = theta - torch.linalg.solve(torch.autograd.functional.hessian(risk, theta), gradient)
    raise AssertionError("Newton's method did not converge")


def test_the_influence_method_lands_near_the_head_retrained_on_the_retain_set():
    """Known answer: with the head at the exact optimum over all of the training set, one Newton step on the
    retain objective (tiny damping, exact solver) lands close to the head re-optimised on the retain set alone,
    computed here independently of the library. Doing nothing stays where it was; the step closes the gap."""
    data = datasets.load("digits", n_train=300, n_test=50, device="cpu")
    request = random_forget(len(data.train), fraction=0.1, seed=1)
    torch.manual_seed(0)
    model = ResNet9(in_channels=1, num_classes=10, width=4).eval()
    with torch.no_grad():
        features = torch.cat([model.features(x) for x, _ in data.batches(data.train, 100)])
    l2, labels = 0.01, data.train.labels
    optimum = _optimal_head(features, labels, l2)
    retrained = _optimal_head(features[request.retain], labels[request.retain], l2)
    with torch.no_grad():
        model.fc.weight.copy_(optimum[:-10].view(10, -1))
        model.fc.bias.copy_(optimum[-10:])
    result = unlearn.influence(model, request, data, k=1, damping=1e-6, l2=l2, solver="exact", progress=False)
    stepped = torch.cat([result.fc.weight.flatten(), result.fc.bias]).double()
    distance = (retrained - optimum).norm()
    assert distance > 0.05, "removing 10% of the examples moves the optimum"
    # measured 0.017 of the distance; without the l2 term 0.35, with the Hessian of all the data 0.10
    assert (stepped - retrained).norm() < 0.05 * distance, ((stepped - retrained).norm(), distance)
    others = [name for name in model.state_dict() if not name.startswith("fc.")]
    assert all(torch.equal(model.state_dict()[n], result.state_dict()[n]) for n in others), "only the head moves"


def parameters_equal(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def with_labels(data: imagedata.ImageData, positions: torch.Tensor, seed: int) -> imagedata.ImageData:
    """``data`` with the labels at ``positions`` shuffled among themselves."""
    labels = data.train.labels.clone()
    order = torch.randperm(len(positions), generator=torch.Generator().manual_seed(seed))
    labels[positions] = labels[positions[order]]
    return dataclasses.replace(data, train=imagedata.Split(data.train.images, labels))


def forget_loss(model: nn.Module, data: imagedata.ImageData, request: ForgetRequest) -> float:
    return predict(model, data, data.train.subset(request.forget)).losses.mean().item()


def test_gradient_ascent_learns_from_the_forget_set_alone_and_raises_its_loss(noisy):
    data, request, original, _ = noisy
    steps = dict(lr=0.01, **FAST)
    result = unlearn.gradient_ascent(original, request, data, **steps)
    assert parameters_equal(
        result, unlearn.gradient_ascent(original, request, with_labels(data, request.retain, 1), **steps)
    )
    assert forget_loss(result, data, request) > forget_loss(original, data, request) + 0.5


def test_neggrad_plus_weighs_descent_on_d_r_against_ascent_on_d_f(noisy):
    logits_r, logits_f = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 3.0]])
    labels_r, labels_f = torch.tensor([0, 0]), torch.tensor([1])
    ce_r = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(1.0))) / 2  # -log softmax by hand
    ce_f = math.log(1 + math.exp(-3.0))
    value = negative_gradient_plus_loss(logits_r, labels_r, logits_f, labels_f, 0.9)
    assert value.item() == pytest.approx(0.9 * ce_r - 0.1 * ce_f, rel=1e-6)
    data, request, original, _ = noisy
    scrambled = with_labels(data, request.forget, 2)
    fine_tuning_only = dict(alpha=1.0, epochs=1, **FAST)
    assert parameters_equal(
        unlearn.neggrad_plus(original, request, data, **fine_tuning_only),
        unlearn.neggrad_plus(original, request, scrambled, **fine_tuning_only),
    ), "at alpha = 1, D_f's labels carry no weight"
    mixed = dict(epochs=1, **FAST)
    assert not parameters_equal(
        unlearn.neggrad_plus(original, request, data, **mixed),
        unlearn.neggrad_plus(original, request, scrambled, **mixed),
    )


def test_random_labels_give_every_forget_example_another_class_and_keep_the_retain_labels(noisy):
    data, request, _, _ = noisy
    indices, labels = relabelled(request, data, seed=0)
    n_retain = len(request.retain)
    assert torch.equal(indices, torch.cat([request.retain, request.forget]))
    assert torch.equal(labels[:n_retain], data.train.labels[request.retain])
    assert (labels[n_retain:] != data.train.labels[request.forget]).all()
    assert len(labels[n_retain:].unique()) == data.info.num_classes, "drawn from every class, not one"


def test_salun_moves_only_the_weights_most_salient_to_the_forget_loss(noisy):
    data, request, original, _ = noisy
    mask = saliency_mask(copy.deepcopy(original), data, request.forget, 0.3, 32)
    total = sum(p.numel() for p in original.parameters())
    assert sum(m.sum().item() for m in mask.values()) == round(0.3 * total)
    network = copy.deepcopy(original).eval()
    x, y = next(iter(data.batches(data.train.subset(request.forget), len(request.forget))))
    loss = F.cross_entropy(network(x), y)
    gradients = dict(zip(mask, torch.autograd.grad(loss, list(network.parameters()))))
    inside = torch.cat([g.abs()[mask[n] == 1] for n, g in gradients.items()])
    outside = torch.cat([g.abs()[mask[n] == 0] for n, g in gradients.items()])
    assert inside.min() >= outside.max() * (1 - 1e-4), "the mask holds the largest gradient magnitudes"
    result = unlearn.salun(original, request, data, salient=0.3, **FAST)
    for (name, before), after in zip(original.named_parameters(), result.parameters()):
        assert torch.equal(before[mask[name] == 0], after[mask[name] == 0]), f"{name}: a weight outside the mask moved"
    assert not parameters_equal(result, original)


def test_l1_sparse_shrinks_the_weights_that_plain_fine_tuning_keeps(noisy):
    weights = decaying(1.0, 4)
    assert [weights() for _ in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    data, request, original, _ = noisy
    sparse = unlearn.l1_sparse(original, request, data, strength=1e-2, epochs=2, **FAST)
    plain = unlearn.finetune(original, request, data, lr=0.05, epochs=2, **FAST)
    assert l1_norm(sparse) < 0.9 * l1_norm(plain), (l1_norm(sparse), l1_norm(plain))


def test_scrub_moves_the_student_away_from_the_teacher_on_d_f_and_keeps_it_close_on_d_r(noisy):
    data, request, original, _ = noisy

    def divergence(student: nn.Module, positions: torch.Tensor) -> float:
        split = data.train.subset(positions)
        teacher, learner = predict(original, data, split).logits, predict(student, data, split).logits
        return distillation_loss(learner, teacher, 4.0).item()

    # Distillation alone on D_r (gamma = 0) at a rate of 0.05: measured 3.85 on D_f and 0.55 on D_r after three
    # epochs; after one, 8.3 on D_f with its max pass and 1.39 without.
    scrubbed = unlearn.scrub(original, request, data, gamma=0.0, lr=0.05, **FAST)
    assert divergence(scrubbed, request.forget) > 3 * divergence(scrubbed, request.retain)
    one_epoch = dict(gamma=0.0, epochs=1, lr=0.05, **FAST)
    with_max_pass = unlearn.scrub(original, request, data, **one_epoch)
    without = unlearn.scrub(original, request, data, max_epochs=0, **one_epoch)
    assert divergence(with_max_pass, request.forget) > 3 * divergence(without, request.forget)


def test_ssd_dampens_exactly_the_weights_far_more_important_to_the_forget_set(clean):
    importance_all, importance_forget = torch.tensor([1.0, 1.0, 1.0, 0.0]), torch.tensor([5.0, 20.0, 100.0, 1.0])
    factors = dampening(importance_all, importance_forget, alpha=10.0, strength=1.0)
    assert factors.tolist() == pytest.approx([1.0, 0.05, 0.01, 0.0]), "kept; λ·I_D/I_Df where I_Df > α·I_D"
    data, request, original, _ = clean
    result = unlearn.ssd(original, request, data, **FAST)
    forget = diagonal_fisher(copy.deepcopy(original), data, data.train.subset(request.forget), 32)
    whole = diagonal_fisher(copy.deepcopy(original), data, data.train, 32)
    for (name, before), after in zip(original.named_parameters(), result.parameters()):
        factor = dampening(whole[name], forget[name], alpha=5.0, strength=1.0)
        assert torch.allclose(after, before * factor, atol=1e-6), name
    assert sum(int((dampening(whole[n], forget[n], 5.0, 1.0) < 1).sum()) for n in whole) > 0, "some weight is dampened"


def test_boundary_shrink_relabels_each_image_of_the_class_with_a_neighbouring_class(clean):
    data, request, original, _ = clean
    forget = data.train.subset(request.forget)
    labels = nearest_other_labels(copy.deepcopy(original), data, forget, 0.1, 32)
    assert (labels != forget.labels).all()
    logits = predict(original, data, forget).logits
    runner_up = logits.scatter(1, forget.labels[:, None].cpu(), float("-inf")).argmax(1)
    assert torch.equal(nearest_other_labels(copy.deepcopy(original), data, forget, 0.0, 32).cpu(), runner_up), (
        "with no step, the most likely other class"
    )


@pytest.mark.parametrize("name", ["boundary_shrink", "boundary_expand"])
def test_boundary_methods_learn_from_the_class_alone_and_keep_the_output_space(name, clean):
    data, request, original, _ = clean
    result = unlearn.get(name)(original, request, data, **FAST, **ON_DIGITS[name])
    assert result.fc.out_features == data.info.num_classes, "the shadow class is pruned"
    again = unlearn.get(name)(original, request, with_labels(data, request.retain, 3), **FAST, **ON_DIGITS[name])
    assert parameters_equal(result, again), "the retain set plays no part"


def test_fisher_forgetting_noises_each_weight_by_the_inverse_of_its_retain_fisher(noisy):
    variance = noise_variance(torch.tensor([1e-3, 1.0, 0.0]), alpha=1e-6, cap=1e-4)
    assert variance.tolist() == pytest.approx([1e-4, 1e-6, 1e-4]), "α / F_r, at most the cap (also where F_r is 0)"
    data, request, original, _ = noisy
    result = unlearn.fisher(original, request, data, alpha=1e-6, seed=4, **FAST)
    information = diagonal_fisher(copy.deepcopy(original), data, data.train.subset(request.retain), 32)
    generator = torch.Generator().manual_seed(4)
    for (name, before), after in zip(original.named_parameters(), result.parameters()):
        drawn = torch.randn(before.shape, generator=generator)
        expected = before + noise_variance(information[name], 1e-6, 1e-3).sqrt() * drawn
        assert torch.allclose(after, expected, atol=1e-6), name


def test_boundary_expanding_refuses_a_network_without_features_and_a_linear_classifier(clean):
    data, request, _, _ = clean
    flat = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(TypeError, match=r"^boundary_expand needs a network with a features\(\) method"):
        unlearn.boundary_expand(flat, request, data, **FAST)


# --------------------------------------------------------------------------- SISA


def test_sisa_serves_a_deletion_with_exactly_the_sisa_model_trained_without_the_forget_set(digits):
    config = dataclasses.replace(CONFIG, epochs=3)
    original = get_or_train(config, digits, progress=False)
    request = random_forget(len(digits.train), fraction=0.002, seed=1)
    before = {key: value.clone() for key, value in original.model.state_dict().items()}
    served = unlearn.get("sisa").run(original, request, digits, shards=4, slices=3, progress=False)
    assert all(torch.equal(before[key], value) for key, value in original.model.state_dict().items())
    assert isinstance(served.model, Ensemble) and len(served.model.members) == 4 and not served.model.training
    layout = Layout.of(digits, request.retain, 4, 3, 0)
    scratch, _ = train_shards(config, digits.for_methods(), layout, progress=False)
    from_scratch = ensemble(config, digits, scratch)
    assert all(
        torch.equal(a, b) for a, b in zip(served.model.state_dict().values(), from_scratch.state_dict().values())
    ), "the deletion's result is the SISA model trained from the start on the retain set, weight for weight"
    whole, _ = train_shards(config, digits.for_methods(), Layout.of(digits, torch.arange(len(digits.train)), 4, 3, 0))
    deployed = ensemble(config, digits, whole)
    touched = {int(s) for s in places(digits.train_ids[request.forget], 4, 3)[0]}
    assert 0 < len(touched) < 4, "the request touches some shards and leaves others"
    for s, (kept, new) in enumerate(zip(deployed.members, served.model.members)):
        same = all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), new.state_dict().values()))
        assert same == (s not in touched), f"shard {s} is retrained exactly when it held a forgotten example"


def test_sisa_with_one_shard_and_one_slice_is_retraining(digits):
    config = dataclasses.replace(CONFIG, epochs=2)
    original = get_or_train(config, digits, progress=False)
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    served = unlearn.sisa(original, request, digits, shards=1, slices=1, progress=False)
    retrained = get_or_train(config, digits, request.retain, progress=False)
    (member,) = served.members
    assert all(torch.equal(a, b) for a, b in zip(member.state_dict().values(), retrained.model.state_dict().values()))
    x, _ = next(iter(digits.batches(digits.test, 8)))
    assert torch.allclose(served(x), F.log_softmax(member(x), 1), atol=1e-5), "one member's log-probabilities"


def test_sisa_redoes_the_share_of_its_work_the_layout_predicts_and_times_only_the_deletion(digits):
    config = dataclasses.replace(CONFIG, epochs=3)
    original = get_or_train(config, digits, progress=False)
    request = random_forget(len(digits.train), fraction=0.001, seed=2)
    via_cache = get_or_unlearn(unlearn.sisa, original, request, digits, shards=4, slices=3)
    payloads = {path.name: torch.load(path, weights_only=True) for path in via_cache.path.parent.glob("*.pt")}
    assert len(payloads) == 2, "the SISA model on all the data, and the one after the deletion"
    after = payloads[via_cache.path.name]
    (whole,) = [p for name, p in payloads.items() if name != via_cache.path.name]
    assert via_cache.seconds == after["seconds"] and after["seconds"] < whole["seconds"]
    assert after["work"] == pytest.approx(retrained_share(config, digits, request, 4, 3) * whole["work"])
    assert 0 < retrained_share(config, digits, request, 4, 3) <= 0.25, "one deletion redoes part of one shard of four"
    n = len(digits.train)
    assert retrained_share(config, digits, request, 1, 1) == (n - 1) / n, "one model: all of it, on one example fewer"
    assert stage_plan(config, 1000, 3) == (32, 2) and stage_plan(dataclasses.replace(config, epochs=12), 1000, 1) == (
        32,
        12,
    )
    assert stage_plan(config, 5, 3) == (2, 4), "a tiny stage: batches of 2, and epochs enough for 8 steps"
    batch, epochs = stage_plan(dataclasses.replace(config, batch_size=64, epochs=10), 50, 1)
    assert batch <= 50 and epochs * (50 // batch) >= 8, "a stage smaller than a batch: one batch of it, 8 epochs"


def test_sisa_places_an_example_by_its_identity_alone_and_refuses_shards_too_small():
    ids = torch.arange(10_000)
    shard, piece = places(ids, 5, 4)
    counts = torch.bincount(shard * 4 + piece, minlength=20)
    assert counts.min() > 400 and counts.max() < 600, "about as many examples in each shard and slice"
    assert torch.equal(places(ids[::7], 5, 4)[0], shard[::7]), "an example's place does not depend on the others"
    assert not torch.equal(places(ids, 5, 4, seed=1)[0], shard)
    data = datasets.load("digits", n_train=100, n_test=50, device="cpu", n_validation=0)
    request = random_forget(100, fraction=0.1, seed=0)
    with pytest.raises(ValueError, match="64 shards leave about 1 of the 100 training examples to a shard"):
        unlearn.sisa(nn.Linear(1, 1), request, data, shards=64, config=CONFIG)
    with pytest.raises(ValueError, match="needs the training config"):
        unlearn.sisa(nn.Linear(1, 1), request, data)


def _defined_in_a_cell(body: str):
    """A function as a notebook cell defines it: in a module with no source file, from code with no file."""
    import sys
    import types

    module = types.ModuleType("a_notebook_kernel")
    sys.modules[module.__name__] = module
    try:
        exec(compile(f"def variant(model, request, data, *, lr=0.1):\n    {body}\n", "<cell>", "exec"), module.__dict__)
        return module.__dict__["variant"]
    finally:
        del sys.modules[module.__name__]


def test_a_method_defined_in_a_notebook_has_a_code_digest_that_follows_its_code():
    first, same, other = (_defined_in_a_cell(body) for body in ("return model", "return model", "return None"))
    digests = [
        unlearn.Method(f"v{i}", f, "fine-tuning", ("random",), "x").code_digest()
        for i, f in enumerate((first, same, other))
    ]
    assert digests[0] == digests[1] != digests[2]
