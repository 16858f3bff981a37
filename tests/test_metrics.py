import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from unlearnlib import metrics
from unlearnlib.checkpoints import TrainedModel
from unlearnlib.forget import ForgetRequest, class_forget, random_forget
from unlearnlib.mia import mia_efficacy, simple_mia
from unlearnlib.train import Outputs


class Guesser(nn.Module):
    """A fixed random linear classifier: it never saw any training data, so every example is a non-member."""

    def __init__(self, data, seed):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        inputs = data.info.channels * data.info.size**2
        self.weight = nn.Parameter(torch.randn(data.info.num_classes, inputs, generator=generator) * 0.1)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def mean_accuracy(models, data, split):
    """The models' mean accuracy on ``split``, from their arg-max predictions: computed here, not by metrics."""
    images, labels = map(torch.cat, zip(*data.batches(split, 4096)))
    with torch.no_grad():
        return float(np.mean([(model(images).argmax(1) == labels).float().mean() for model in models]))


class Memoriser(Guesser):
    """A guesser that also looks each input up among its training images, and is sure of the ones it finds."""

    def __init__(self, data, indices, seed):
        super().__init__(data, seed)
        images, labels = zip(*data.batches(data.train.subset(indices), 4096))
        self.register_buffer("memory", torch.cat(images).flatten(1))
        self.register_buffer("answers", torch.cat(labels))

    def forward(self, x):
        logits = super().forward(x)
        distance, nearest = torch.cdist(x.flatten(1), self.memory, compute_mode="donot_use_mm_for_euclid_dist").min(1)
        found = distance < 1e-4
        logits[found] = 20 * nn.functional.one_hot(self.answers[nearest[found]], logits.shape[1]).float()
        return logits


class NearestMean(nn.Module):
    """Nearest class mean of the training images at ``indices``: it generalises to the classes it saw, and only them."""

    def __init__(self, data, indices):
        super().__init__()
        images, labels = (torch.cat(parts) for parts in zip(*data.batches(data.train.subset(indices), 4096)))
        means = torch.stack(
            [
                images[labels == c].mean(0) if (labels == c).any() else torch.full_like(images[0], 1e3)
                for c in range(data.info.num_classes)
            ]
        )
        self.register_buffer("means", means.flatten(1))

    def forward(self, x):
        return -(torch.cdist(x.flatten(1), self.means) ** 2) / 10


@pytest.fixture(scope="module")
def request_(digits):
    return random_forget(len(digits.train), fraction=0.2, seed=0)


def test_logit_scaled_confidence_of_hand_made_logits():
    evaluation = Outputs(torch.tensor([[0.0, math.log(3)], [0.0, 0.0], [100.0, 0.0]]), torch.tensor([1, 0, 0]))
    # p = 3/4: log(3/4) - log(1/4) = log 3; p = 1/2: 0; p = 1 - e^-100: about 100, where log(1 - p) underflows.
    assert evaluation.logit_confidences.tolist() == pytest.approx([math.log(3), 0.0, 100.0])
    three = Outputs(torch.zeros(1, 3), torch.tensor([2]))
    assert three.logit_confidences.item() == pytest.approx(math.log(1 / 3) - math.log(2 / 3))


def test_accuracies_come_from_one_pass_over_each_set(digits, request_):
    outputs = metrics.model_outputs(Memoriser(digits, request_.retain, seed=0), digits, request_)
    assert len(outputs.forget.labels) == len(request_.forget) and len(outputs.retain.labels) == len(request_.retain)
    values = metrics.accuracies(outputs)
    assert values["retain_accuracy"] == 1.0, "it remembers every retain image"
    assert values["unlearn_accuracy"] == pytest.approx(1 - values["forget_accuracy"])
    assert values["forget_accuracy"] < 0.5 and values["test_accuracy"] < 0.5, "it only guesses on unseen images"


def test_a_model_that_never_saw_the_forget_set_scores_as_the_gold_standard(digits, request_):
    guessers = [Guesser(digits, seed) for seed in range(3)]
    row = metrics.evaluate(guessers, guessers, Memoriser(digits, torch.arange(len(digits.train)), 0), digits, request_)
    assert abs(row["mia_retrained"] - 0.5) < 0.1, "forget and test examples are alike to a model that saw neither"
    assert row["mia_original"] > 0.95, "the memoriser gives itself away"
    assert row["gap_to_retrained"] == 0.0 and row["average_gap"] == 0.0
    assert row["forgetting_quality"] == 1.0 and row["unlearning_score"] == 1.0, "identical models: no rule separates"
    assert abs(row["lira_auc"] - 0.5) < 0.1
    assert row["n_models"] == 3
    others = [Guesser(digits, seed) for seed in range(3, 6)]
    row = metrics.evaluate(others, guessers, guessers[0], digits, request_)
    splits = (digits.train.subset(request_.forget), digits.train.subset(request_.retain), digits.test)
    differences = [abs(mean_accuracy(others, digits, s) - mean_accuracy(guessers, digits, s)) for s in splits]
    expected = np.mean([*differences, abs(row["mia_unlearned"] - row["mia_retrained"])])
    assert 0 < row["gap_to_retrained"] == pytest.approx(expected), "other guessers: a small gap, computed here too"


def test_a_model_that_kept_the_forget_set_scores_badly(digits, request_):
    everything = torch.arange(len(digits.train))
    memorisers = [Memoriser(digits, everything, seed) for seed in range(3)]
    retrained = [Memoriser(digits, request_.retain, seed) for seed in range(3, 6)]
    row = metrics.evaluate(memorisers, retrained, memorisers[0], digits, request_, seconds=2.0, retrain_seconds=8.0)
    assert row["forget_accuracy"] == 1.0 and row["mia_unlearned"] > 0.95 and row["lira_auc"] > 0.95
    assert row["lira_tpr_at_1%"] > 0.9
    assert row["forgetting_quality"] == 0.0, "perfectly separated from every retrained model"
    assert row["unlearning_score"] == 0.0
    assert row["mia_efficacy_unlearned"] == 0.0, "every forget example looks like the retain set"
    assert row["mia_efficacy_original"] == 0.0 and row["mia_efficacy_retrained"] > 0.9, "and unseen ones like test"
    assert row["gap_to_retrained"] > 0.2
    splits = {
        "forget": digits.train.subset(request_.forget),
        "retain": digits.train.subset(request_.retain),
        "test": digits.test,
    }
    unlearned_acc = {name: mean_accuracy(memorisers, digits, split) for name, split in splits.items()}
    retrained_acc = {name: mean_accuracy(retrained, digits, split) for name, split in splits.items()}
    differences = [abs(unlearned_acc[name] - retrained_acc[name]) for name in splits]  # |UA - UA_r| = |FA - FA_r|
    expected = np.mean([*differences, abs(row["mia_unlearned"] - row["mia_retrained"])])
    assert row["gap_to_retrained"] == pytest.approx(expected), "mean absolute difference over UA, RA, TA and MIA"
    efficacy = abs(row["mia_efficacy_unlearned"] - row["mia_efficacy_retrained"])
    assert row["average_gap"] == pytest.approx(np.mean([*differences, efficacy])), "SalUn's: with MIA-efficacy"
    assert row["time_ratio"] == 0.25


def test_without_enough_models_the_model_sample_measures_are_missing(digits, request_):
    options = dict(hyperparameters={"optimizer": "sgd"})  # a text column: the row holds objects, NaN stays NaN
    row = metrics.evaluate(Guesser(digits, 0), Guesser(digits, 1), Guesser(digits, 2), digits, request_, **options)
    missing = ("forgetting_quality", "unlearning_score", "lira_auc", "lira_tpr_at_1%", "lira_tpr_at_0.1%")
    assert all(math.isnan(row[key]) for key in missing)
    assert math.isnan(row["seconds"]) and math.isnan(row["time_ratio"]) and row["n_models"] == 1


def test_a_forget_set_smaller_than_the_folds_has_no_simple_mia_and_so_no_gap(digits):
    memorised = torch.arange(len(digits.train))
    models = [Memoriser(digits, memorised, seed) for seed in range(3)]
    for size, folds in ((4, 5), (2, 3)):
        small = ForgetRequest("random", torch.arange(size), len(digits.train))
        row = metrics.evaluate(models, models, models[0], digits, small, folds=folds)
        assert math.isnan(row["mia_unlearned"]) and math.isnan(row["mia_retrained"]) and math.isnan(row["mia_original"])
        assert math.isnan(row["gap_to_retrained"])
        assert row["forget_accuracy"] == 1.0 and row["mia_efficacy_unlearned"] == 0.0, (
            "the other measures are still there"
        )
        assert row["forgetting_quality"] == 1.0
    five = ForgetRequest("random", torch.arange(5), len(digits.train))
    enough = metrics.evaluate(models, models, models[0], digits, five)
    assert enough["mia_unlearned"] >= 0.5 and enough["gap_to_retrained"] == 0.0, "five examples: five folds"


def test_outputs_can_be_reused_and_hyperparameters_lead_the_row(digits, request_):
    outputs = [metrics.model_outputs(Guesser(digits, seed), digits, request_) for seed in range(3)]
    row = metrics.evaluate(
        outputs, outputs, outputs[0], digits, request_, name="same", hyperparameters={"epochs": 2, "lr": 0.01}
    )
    assert row.name == "same" and list(row.index[:2]) == ["epochs", "lr"]
    table = metrics.short_table([row])
    assert list(table.columns) == ["Epochs", "LR", "UA", "RA", "TA", "F", "US", "GS", "MIA O", "MIA U"]
    assert isinstance(table, pd.DataFrame) and table.loc["same", "F"] == 1.0
    extended = metrics.short_table([row], extra=["gap_to_retrained", "n_models"])
    assert list(extended.columns)[-3:] == ["MIA U", "gap", "n_models"], "extras follow, under their labels if any"
    assert extended.loc["same", "n_models"] == 3
    for extra, kind, message in (
        (["nope"], ValueError, "the rows have no column 'nope'; they have epochs, lr, "),
        (["nope", "lr", "nada"], ValueError, "the rows have no column 'nope', 'nada'; they have epochs, lr, "),
        ("time_ratio", TypeError, "extra must be a list of column names, got the string 'time_ratio'"),
    ):
        with pytest.raises(kind) as raised:
            metrics.short_table([row], extra=extra)
        assert str(raised.value).startswith(message)


def test_class_requests_take_non_members_from_the_same_class(digits):
    request = class_forget(digits.train.labels, 3, digits.info)
    mask = metrics.nonmember_mask(digits.test.labels, request)
    assert mask.sum() == (digits.test.labels == 3).sum() and (digits.test.labels[mask] == 3).all()
    assert metrics.nonmember_mask(digits.test.labels, request, same_class=False).all()
    random_request = random_forget(len(digits.train), count=10)
    with pytest.raises(ValueError, match="same-class non-members need a request for a whole class"):
        metrics.nonmember_mask(digits.test.labels, random_request, same_class=True)


def test_same_class_non_members_keep_a_model_that_never_saw_the_class_at_chance(digits):
    request = class_forget(digits.train.labels, 3, digits.info)
    retrained = metrics.model_outputs(NearestMean(digits, request.retain), digits, request)
    assert retrained.forget.accuracy == 0.0 and retrained.test.accuracy > 0.7
    # Against every class, the forgotten class stands out (its images are unseen, most test images are not).
    assert metrics.simple_mia_of(retrained, request, same_class=False) > 0.7
    assert abs(metrics.simple_mia_of(retrained, request) - 0.5) < 0.15


def test_evaluate_refuses_mismatched_input(digits, request_):
    other = random_forget(len(digits.train) - 1, count=10)
    with pytest.raises(ValueError, match="training split of"):
        metrics.model_outputs(Guesser(digits, 0), digits, other)
    with pytest.raises(ValueError, match="no unlearned models"):
        metrics.evaluate([], Guesser(digits, 0), Guesser(digits, 0), digits, request_)


def test_an_empty_forget_set_is_refused_before_anything_is_measured():
    with pytest.raises(ValueError, match="forget indices are empty"):
        ForgetRequest("random", torch.tensor([], dtype=torch.long), 10)


def test_class_accuracies_split_the_test_set_at_the_forgotten_class():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])
    predicted = torch.tensor([0, 1, 1, 1, 0, 2, 2, 0])  # class 0: 2 of 3 right; the others: 4 of 5
    logits = nn.functional.one_hot(predicted, 3).float()
    empty = Outputs(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    outputs = metrics.ModelOutputs(forget=empty, retain=empty, test=Outputs(logits, labels))
    request = ForgetRequest(forget=torch.tensor([0]), n_train=2, kind="class", target_class=0)
    assert metrics.class_accuracies(outputs, request) == pytest.approx(
        {"class_test_accuracy": 2 / 3, "other_test_accuracy": 4 / 5}
    )
    with pytest.raises(ValueError, match="needs a request for a whole class"):
        metrics.class_accuracies(outputs, random_forget(10, count=2))


def test_forget_output_change_is_the_mean_absolute_change_of_the_logit_confidence():
    def outputs(forget_logits):
        empty = Outputs(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
        return metrics.ModelOutputs(Outputs(torch.tensor(forget_logits), torch.tensor([0, 0])), empty, empty)

    original = outputs([[0.0, 0.0], [2.0, 0.0]])  # logit confidences z_0 - z_1: 0 and 2
    moved = outputs([[1.0, 0.0], [0.0, 0.0]])  # 1 and 0: changes of 1 and 2, mean 1.5
    assert metrics.forget_output_change([moved, original], [original, original]) == pytest.approx(0.75)
    assert metrics.forget_output_change([original], [original]) == 0.0, "doing nothing moves nothing"
    with pytest.raises(ValueError, match="one unlearned model per original model"):
        metrics.forget_output_change([moved], [original, original])


def test_attack_success_counts_attacked_classes_only():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    predictions = torch.tensor([2, 0, 2, 2, 2, 1])
    assert metrics.attack_success(predictions, labels, {0: 2, 1: 2}) == pytest.approx(3 / 4)  # class 2 is left out
    assert metrics.attack_success(predictions, labels, {0: 1, 1: 0}) == 0.0
    assert metrics.attack_success(torch.tensor([1, 1, 0, 0]), torch.tensor([0, 0, 1, 1]), {0: 1, 1: 0}) == 1.0
    with pytest.raises(ValueError, match="none of the labels is an attacked class: targets attacks"):
        metrics.attack_success(predictions[:2], labels[:2], {2: 0})


def _trained(model, seconds):
    """A model as the checkpoint cache hands it out, with the time its training took."""
    return TrainedModel(model, None, torch.arange(3), None, seconds, Path("cached.pt"), True)


def test_a_class_request_row_splits_test_accuracy_at_the_class(digits):
    request = class_forget(digits.train.labels, 3, digits.info)
    unlearned = NearestMean(digits, request.retain)  # never saw a 3: never predicts one
    guessers = [Guesser(digits, seed) for seed in range(2)]
    row = metrics.evaluate(unlearned, guessers, guessers[0], digits, request)
    in_class = digits.test.labels == 3
    others = digits.test.subset(torch.nonzero(~in_class).squeeze(1))
    assert row["class_test_accuracy"] == 0.0
    assert row["other_test_accuracy"] == pytest.approx(mean_accuracy([unlearned], digits, others))
    shadows = [metrics.model_outputs(guesser, digits, request) for guesser in guessers]
    roc = metrics.lira_of(metrics.model_outputs(unlearned, digits, request), shadows, request, same_class=False)
    assert roc.n_nonmembers == len(digits.test), "same_class=False takes non-members from every class"


def test_the_retraining_time_comes_from_the_first_cached_retrained_model(digits, request_):
    retrained = [_trained(Guesser(digits, seed), seconds) for seed, seconds in ((1, 8.0), (2, 99.0))]
    row = metrics.evaluate(_trained(Guesser(digits, 0), 1.0), retrained, retrained[0], digits, request_, seconds=2.0)
    assert row["retrain_seconds"] == 8.0 and row["time_ratio"] == 0.25
    row = metrics.evaluate(Guesser(digits, 0), retrained, Guesser(digits, 0), digits, request_, retrain_seconds=4.0)
    assert row["retrain_seconds"] == 4.0 and math.isnan(row["time_ratio"]), "no unlearning time given"
    row = metrics.evaluate(
        Guesser(digits, 0), retrained, Guesser(digits, 0), digits, request_, seconds=1.0, retrain_seconds=0.0
    )
    assert math.isnan(row["time_ratio"]), "no ratio to a retraining that took no time"


def test_two_retrained_models_are_enough_shadows_for_lira(digits, request_):
    guessers = [Guesser(digits, seed) for seed in range(3)]
    row = metrics.evaluate(guessers[0], guessers[1:], guessers[0], digits, request_)
    assert all(0 <= row[key] <= 1 for key in ("lira_auc", "lira_tpr_at_1%", "lira_tpr_at_0.1%"))
    row = metrics.evaluate(guessers[0], guessers[1], guessers[0], digits, request_)
    assert all(math.isnan(row[key]) for key in ("lira_auc", "lira_tpr_at_1%", "lira_tpr_at_0.1%"))


def test_folds_and_seed_reach_both_attacks(digits, request_):
    outputs = metrics.model_outputs(Guesser(digits, 0), digits, request_)  # near chance: each fold and seed shows
    forget, test, retain = (getattr(outputs, part) for part in ("forget", "test", "retain"))
    for options in ({"folds": 3, "seed": 7}, {"folds": 5, "seed": 0}):
        row = metrics.evaluate(outputs, outputs, outputs, digits, request_, **options)
        assert row["mia_unlearned"] == simple_mia(forget.losses, test.losses, **options)
        assert metrics.simple_mia_of(outputs, request_, **options) == row["mia_unlearned"]
        assert row["mia_efficacy_unlearned"] == mia_efficacy(
            retain.logit_confidences, test.logit_confidences, forget.logit_confidences, seed=options["seed"]
        )
    defaults = metrics.evaluate(outputs, outputs, outputs, digits, request_)
    assert (
        defaults["mia_unlearned"] == row["mia_unlearned"]
        and defaults["mia_efficacy_unlearned"] == row["mia_efficacy_unlearned"]
    )
    assert metrics.simple_mia_of(outputs, request_) == row["mia_unlearned"], "5 folds and seed 0 by default"
    other = metrics.evaluate(outputs, outputs, outputs, digits, request_, folds=3, seed=7)
    measures = ("mia_unlearned", "mia_efficacy_unlearned")
    assert [other[m] for m in measures] != [row[m] for m in measures]


def test_a_table_of_a_data_frame_and_outputs_of_a_cached_model(digits, request_):
    row = metrics.evaluate(
        *[metrics.model_outputs(_trained(Guesser(digits, 0), 1.0), digits, request_)] * 3, digits, request_
    )
    assert list(metrics.short_table(pd.DataFrame([row])).columns) == [
        "UA",
        "RA",
        "TA",
        "F",
        "US",
        "GS",
        "MIA O",
        "MIA U",
    ]


def test_attack_success_towards_class_0_and_on_one_image():
    assert metrics.attack_success(torch.tensor([0, 0, 1]), torch.tensor([1, 1, 1]), {1: 0}) == pytest.approx(2 / 3)
    assert metrics.attack_success(torch.tensor([2]), torch.tensor([1]), {1: 2}) == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda d, r: metrics.evaluate(Guesser(d, 0), Guesser(d, 1), Guesser(d, 2), d, "r"),
            "request must be a ForgetRequest, got str",
        ),
        (
            lambda d, r: metrics.evaluate(Guesser(d, 0), Guesser(d, 1), Guesser(d, 2), d, r, folds=1),
            "folds must be at least 2, got 1",
        ),
        (
            lambda d, r: metrics.evaluate(Guesser(d, 0), Guesser(d, 1), Guesser(d, 2), d, r, seed=-1),
            "seed must be in 0..4294967295, got -1",
        ),
        (lambda d, r: metrics.evaluate(Guesser(d, 0), [], Guesser(d, 2), d, r), "no retrained models were given"),
        (lambda d, r: metrics.evaluate(Guesser(d, 0), Guesser(d, 1), [], d, r), "no original models were given"),
        (lambda d, r: metrics.model_outputs(Guesser(d, 0), d, "r"), "request must be a ForgetRequest, got str"),
        (
            lambda d, r: metrics.model_outputs("net", d, r),
            "model must be a network (an nn.Module) or a TrainedModel, got str",
        ),
        (
            lambda d, r: metrics.nonmember_mask(torch.tensor([0, 1]), class_forget(d.train.labels, 3, d.info)),
            "the test set has no examples of class 3",
        ),
        (
            lambda d, r: metrics.class_accuracies(None, r),
            "accuracy on the forgotten class needs a request for a whole class",
        ),
        (
            lambda d, r: metrics.nonmember_mask(d.test.labels, r, same_class=True),
            "same-class non-members need a request for a whole class",
        ),
        (
            lambda d, r: metrics.attack_success(
                torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), {0: 1}
            ),
            "labels are empty: there are no triggered images to score",
        ),
        (
            lambda d, r: metrics.attack_success(torch.tensor([0]), torch.tensor([0]), {-1: 0}),
            "targets (an attacked class) must be >= 0, got -1",
        ),
        (
            lambda d, r: metrics.attack_success(torch.tensor([0]), torch.tensor([0]), {0: -1}),
            "targets (a target class) must be >= 0, got -1",
        ),
        (
            lambda d, r: metrics.attack_success(torch.tensor([0.0]), torch.tensor([0]), {0: 1}),
            "predictions must be class numbers (integers), got torch.float32",
        ),
        (
            lambda d, r: metrics.attack_success(torch.tensor([0]), torch.tensor([True]), {0: 1}),
            "labels must be class numbers (integers), got torch.bool",
        ),
        (
            lambda d, r: metrics.attack_success(torch.tensor([0]), torch.tensor([1j]), {0: 1}),
            "labels must be class numbers (integers), got torch.complex64",
        ),
        (
            lambda d, r: metrics.attack_success(torch.tensor([[0]]), torch.tensor([0]), {0: 1}),
            "predictions must be one class per image (1-d), got shape (1, 1)",
        ),
        (
            lambda d, r: metrics.attack_success("x", torch.tensor([0]), {0: 1}),
            "predictions must be class numbers (a 1-d integer tensor), got 'x': ",
        ),
    ],
)
def test_each_refusal_names_its_argument(digits, request_, call, message):
    """Each message in full, as the user reads it."""
    with pytest.raises((ValueError, TypeError), match=f"^{re.escape(message)}"):
        call(digits, request_)


def test_the_row_carries_each_per_model_measures_spread_over_the_models(digits, request_):
    guessers = [Guesser(digits, seed) for seed in range(3)]
    row = metrics.evaluate(guessers, guessers, guessers[0], digits, request_)
    for column, split in (("retain_accuracy", digits.train.subset(request_.retain)), ("test_accuracy", digits.test)):
        each = [mean_accuracy([model], digits, split) for model in guessers]
        assert row[f"{column}_std"] == pytest.approx(np.std(each, ddof=1)), column  # the sample std, by numpy
        assert row[f"{column}_std"] > 0
    assert {f"{column}_std" for column in metrics.SPREAD} <= set(row.index)
    alone = metrics.evaluate(guessers[0], guessers, guessers[0], digits, request_)
    assert all(math.isnan(alone[f"{column}_std"]) for column in metrics.SPREAD), "one model has no spread"


def test_a_measure_with_its_spread_reads_mean_plus_or_minus_std():
    assert metrics.with_spread(0.80312, 0.0041) == "0.803 ± 0.004"
    assert metrics.with_spread(0.5, math.nan, 2) == "0.50"
    assert metrics.with_spread(math.nan, 0.1) == "–"
