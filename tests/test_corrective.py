"""Corrective unlearning: poisoning, the imbalanced class pair, deletion sets, attack success and repairs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from unlearnlib import corrective
from unlearnlib.batching import Augmentation
from unlearnlib.forget import corrective_forget
from unlearnlib.imagedata import DatasetInfo, ImageData, Split
from unlearnlib.poisoning import Trigger, class_pair, poison
from unlearnlib.train import TrainConfig


def synthetic(n_per_class: int = 20, classes: int = 3, size: int = 8) -> ImageData:
    """Dark images whose class is written as the brightness of the top-left pixel (0, 100 or 200)."""
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    images = torch.zeros(len(labels), 1, size, size, dtype=torch.uint8)
    images[:, 0, 0, 0] = (labels * 100).to(torch.uint8)
    split = Split(images, labels)
    info = DatasetInfo("digits", tuple(f"c{i}" for i in range(classes)), 1, size, Augmentation(0, False))
    return ImageData(info, split, Split(images.clone(), labels.clone()), torch.arange(len(labels)), "synthetic")


class ReadsTheCorner(nn.Module):
    """Classifies by the top-left pixel, so a bottom-right trigger changes nothing."""

    def __init__(self, data: ImageData):
        super().__init__()
        self.register_buffer("mean", data.mean)
        self.register_buffer("std", data.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixel = (x[:, 0, 0, 0] * self.std[0] + self.mean[0]) * 255
        return -(pixel[:, None] - torch.tensor([0.0, 100.0, 200.0])).abs()


class AlwaysSays(nn.Module):
    def __init__(self, cls: int, classes: int = 3):
        super().__init__()
        self.logits = nn.Parameter(torch.nn.functional.one_hot(torch.tensor(cls), classes).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


@pytest.mark.parametrize(
    ("corner", "rows", "columns"),
    [
        ("top-left", (0, 3), (0, 3)),
        ("top-right", (0, 3), (5, 8)),
        ("bottom-left", (5, 8), (0, 3)),
        ("bottom-right", (5, 8), (5, 8)),
    ],
)
def test_the_trigger_lands_in_the_corner_asked_for_and_nowhere_else(corner, rows, columns):
    images = torch.full((2, 3, 8, 8), 7, dtype=torch.uint8)
    stamped = Trigger(3, corner).stamp(images)
    patch = stamped[:, :, rows[0] : rows[1], columns[0] : columns[1]]
    expected = torch.tensor([[255, 0, 255], [0, 255, 0], [255, 0, 255]], dtype=torch.uint8)
    assert (patch == expected).all(), "every channel of every image carries the checkerboard"
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[rows[0] : rows[1], columns[0] : columns[1]] = False
    assert (stamped[:, :, outside] == 7).all() and (images == 7).all(), "the rest, and the input, are untouched"


def test_a_trigger_larger_than_the_image_or_in_no_corner_is_refused():
    with pytest.raises(ValueError, match="does not fit a 8x8 image"):
        Trigger(9).stamp(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="unknown corner 'middle'"):
        Trigger(3, "middle")
    with pytest.raises(ValueError, match="size must be positive"):
        Trigger(0)


def test_poisoning_stamps_and_relabels_exactly_the_chosen_images_to_the_target():
    data = synthetic()
    result = poison(data, 10, target=2, seed=1)
    assert len(result.indices) == 10 and (data.train.labels[result.indices] != 2).all()
    assert torch.equal(result.sources, data.train.labels[result.indices])
    assert (result.data.train.labels[result.indices] == 2).all()
    assert result.targets == {0: 2, 1: 2}
    untouched = result.clean
    assert torch.equal(result.data.train.labels[untouched], data.train.labels[untouched])
    assert torch.equal(result.data.train.images[untouched], data.train.images[untouched])
    assert (result.data.train.images[result.indices, :, 5:, 5:] == Trigger().pattern()).all()
    assert torch.equal(data.train.labels, torch.arange(3).repeat_interleave(20)), "the input data is unchanged"
    assert torch.equal(result.data.test.images, data.test.images), "the test split stays clean"


def test_poisons_are_spread_over_the_source_classes_in_the_ratio_asked_for():
    data = synthetic(n_per_class=20, classes=3)
    counts = lambda result: torch.bincount(result.sources, minlength=3).tolist()  # noqa: E731
    assert counts(poison(data, 10, target=0, share={1: 3, 2: 1})) == [0, 8, 2]  # 7.5 and 2.5: largest remainder
    assert counts(poison(data, 9, target=0, share={1: 1, 2: 2})) == [0, 3, 6]
    assert counts(poison(data, 10, target=0)) == [0, 5, 5], "by default in proportion to the classes' sizes"
    both_ways = poison(data, 6, target={0: 1, 1: 0}, share={0: 1, 1: 1})
    assert counts(both_ways) == [3, 3, 0] and both_ways.targets == {0: 1, 1: 0}
    flipped = both_ways.data.train.labels[both_ways.indices]
    assert torch.equal(flipped, 1 - both_ways.sources)


def test_bad_poisoning_requests_are_refused_with_a_clear_message():
    data = synthetic(n_per_class=20, classes=3)
    with pytest.raises(ValueError, match="61 poisons asked for, but the training split has only 60"):
        poison(data, 61, target=0)
    with pytest.raises(ValueError, match="which has only 20 images"):
        poison(data, 30, target=0, share={1: 1})
    with pytest.raises(ValueError, match="at least 1"):
        poison(data, 0, target=0)
    with pytest.raises(ValueError, match="not sources"):
        poison(data, 5, target=0, share={0: 1})
    with pytest.raises(ValueError, match="different target"):
        poison(data, 5, target={1: 1})
    with pytest.raises(ValueError, match="non-negative"):
        poison(data, 5, target=0, share={1: -1, 2: 2})
    with pytest.raises(ValueError, match="does not fit"):
        poison(data, 5, target=0, trigger=Trigger(9))


CHECKERBOARD = torch.tensor([[255, 0, 255], [0, 255, 0], [255, 0, 255]], dtype=torch.uint8)


def test_each_source_class_can_carry_its_own_trigger_in_its_own_corner():
    data = synthetic(n_per_class=20, classes=3)
    corners = {0: Trigger(3, "bottom-right"), "c1": Trigger(3, "top-left")}
    result = poison(data, 6, target={0: 1, 1: 0}, share={0: 1, 1: 1}, trigger=corners, seed=2)
    assert result.trigger == {0: Trigger(3, "bottom-right"), 1: Trigger(3, "top-left")}, "keys become indices"
    images = result.data.train.images
    from_0, from_1 = result.indices[result.sources == 0], result.indices[result.sources == 1]
    assert len(from_0) == len(from_1) == 3
    assert (images[from_0, 0, 5:, 5:] == CHECKERBOARD).all() and (images[from_0, 0, :3, :3] == 0).all()
    assert (images[from_1, 0, :3, :3] == CHECKERBOARD).all() and (images[from_1, 0, 5:, 5:] == 0).all()
    assert torch.equal(images[result.clean], data.train.images[result.clean]), "clean images are untouched"
    assert "3x3 bottom-right on c0, 3x3 top-left on c1" in result.describe()


def test_a_two_corner_backdoor_is_tested_with_each_classs_own_patch():
    data = synthetic(n_per_class=4, classes=3)
    result = poison(data, 2, target={0: 1, 1: 0}, trigger={0: Trigger(3, "bottom-right"), 1: Trigger(3, "top-left")})
    test = result.triggered(data.test)
    labels = data.test.labels
    assert torch.equal(test.labels, labels)
    assert (test.images[labels == 0][:, 0, 5:, 5:] == CHECKERBOARD).all()
    assert (test.images[labels == 0][:, 0, :3, :3] == 0).all()
    assert (test.images[labels == 1][:, 0, :3, :3] == CHECKERBOARD).all()
    assert (test.images[labels == 1][:, 0, 5:, 5:] == 0).all()
    assert torch.equal(test.images[labels == 2], data.test.images[labels == 2]), "an unattacked class: no patch"
    assert result.trigger_for(1) == Trigger(3, "top-left")
    moved = dataclasses.replace(result, trigger=Trigger(3, "top-right"))
    assert (moved.triggered(data.test).images[:, 0, :3, 5:] == CHECKERBOARD).all(), "one trigger: every image"
    assert corrective.scores(ReadsTheCorner(data), data, result, minority=1)["attack_success"] == 0.0


def test_each_direction_of_a_two_class_backdoor_gets_its_own_attack_success():
    data = synthetic(n_per_class=10, classes=2)
    both_ways = poison(data, 4, target={0: 1, 1: 0})
    says_0 = corrective.scores(AlwaysSays(0, classes=2), data, both_ways, minority=1)
    assert says_0["attack_success"] == 0.5
    assert says_0["into_minority_attack_success"] == 0.0, "majority images (0) sent to the minority (1): none"
    assert says_0["into_majority_attack_success"] == 1.0, "minority images (1) sent to the majority (0): all"
    one_way = corrective.scores(AlwaysSays(1, classes=2), data, poison(data, 2, target={1: 0}), minority=1)
    assert one_way["into_majority_attack_success"] == 0.0 and "into_minority_attack_success" not in one_way


def test_a_trigger_map_that_is_not_one_trigger_per_source_class_is_refused():
    data = synthetic(n_per_class=20, classes=3)
    both = {0: 1, 1: 0}
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        poison(data, 4, target=both, trigger={0: Trigger(), "cat": Trigger()})
    with pytest.raises(TypeError, match=r"trigger\['c1'\] must be a Trigger, got str"):
        poison(data, 4, target=both, trigger={0: Trigger(), "c1": "top-left"})
    with pytest.raises(TypeError, match="trigger must be a Trigger or a dict of class -> Trigger, got str"):
        poison(data, 4, target=both, trigger="top-left")
    with pytest.raises(ValueError, match=r"missing for \['c1'\], not a source: \[\]"):
        poison(data, 4, target=both, trigger={0: Trigger()})
    with pytest.raises(ValueError, match=r"not a source: \['c2'\]"):
        poison(data, 4, target=both, trigger={0: Trigger(), 1: Trigger(), 2: Trigger()})
    with pytest.raises(ValueError, match="names class 'c0' twice"):
        poison(data, 4, target=both, trigger={0: Trigger(), "c0": Trigger(), 1: Trigger()})
    with pytest.raises(ValueError, match="empty dict"):
        poison(data, 4, target=both, trigger={})
    one_way = poison(data, 4, target={0: 1}, trigger={0: Trigger()})
    with pytest.raises(ValueError, match="no Trigger for the attacked classes"):
        dataclasses.replace(one_way, targets={0: 1, 1: 0})


def test_the_backdoored_pair_gives_each_direction_its_own_corner_and_drops_one_without_poisons(digits):
    options = dict(minority="8", ratio=0.5, poisons=10, n_majority=100)
    corners = {"8": Trigger(3, "bottom-right"), "3": Trigger(3, "top-left")}
    mixed = corrective.backdoored_pair(digits, ("3", "8"), minority_share=0.3, trigger=corners, **options)
    assert mixed.trigger == {0: Trigger(3, "top-left"), 1: Trigger(3, "bottom-right")}
    images = mixed.data.train.images
    assert (images[mixed.indices[mixed.sources == 1], 0, -3:, -3:] == CHECKERBOARD).all(), "eights: bottom-right"
    assert (images[mixed.indices[mixed.sources == 0], 0, :3, :3] == CHECKERBOARD).all(), "threes: top-left"
    into_minority = corrective.backdoored_pair(digits, ("3", "8"), minority_share=1.0, trigger=corners, **options)
    assert into_minority.targets == {0: 1} and into_minority.trigger == {0: Trigger(3, "top-left")}
    with pytest.raises(ValueError, match="'5' is not one of the pair"):
        corrective.backdoored_pair(digits, ("3", "8"), minority_share=0.5, trigger={"5": Trigger()}, **options)
    with pytest.raises(ValueError, match="needs a Trigger for each class of the pair"):
        corrective.backdoored_pair(digits, ("3", "8"), minority_share=0.5, trigger={"8": Trigger()}, **options)
    with pytest.raises(TypeError, match="got list"):
        corrective.backdoored_pair(digits, ("3", "8"), minority_share=0.5, trigger=[Trigger()], **options)


def test_the_cat_is_the_minority_on_cifar10_as_in_the_source():
    assert corrective.SIMILAR_CLASSES["cifar10"] == ("dog", "cat")


def test_a_class_pair_subsamples_the_minority_keeps_the_test_set_balanced_and_nests(digits):
    pairs = {r: class_pair(digits, ("3", "8"), minority="8", ratio=r, n_majority=100, seed=0) for r in (0.2, 0.7, 1.0)}
    for ratio, pair in pairs.items():
        assert pair.info.classes == ("3", "8") and pair.info.num_classes == 2
        assert torch.bincount(pair.train.labels).tolist() == [100, round(ratio * 100)]
        test_counts = torch.bincount(pair.test.labels).tolist()
        assert test_counts[0] == test_counts[1] > 0
        originals = digits.train.labels[torch.isin(digits.train_ids, pair.train_ids)]
        assert torch.equal(torch.where(originals == 8, 1, 0), pair.train.labels), "ids and labels agree"
    ids = {r: set(pair.train_ids.tolist()) for r, pair in pairs.items()}
    assert ids[0.2] < ids[0.7] < ids[1.0], "the smaller minority is a subset of the larger"
    assert pairs[0.2].fingerprint != pairs[0.7].fingerprint


def test_bad_class_pairs_are_refused(digits):
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        class_pair(digits, ("3", "8"), minority="8", ratio=1.5)
    with pytest.raises(ValueError, match="ratio must be"):
        class_pair(digits, ("3", "8"), minority="8", ratio=0)
    with pytest.raises(ValueError, match="not one of the pair"):
        class_pair(digits, ("3", "8"), minority="5")
    with pytest.raises(ValueError, match="two different classes"):
        class_pair(digits, ("3", "3"), minority="3")
    with pytest.raises(ValueError, match="but the training split has only"):
        class_pair(digits, ("3", "8"), minority="8", ratio=1.0)  # 8 has fewer training images than 3


def test_attack_success_is_0_for_a_model_that_ignores_the_trigger_and_1_for_one_that_always_says_the_target():
    data = synthetic()
    poisoning = poison(data, 10, target=2)
    ignores = corrective.scores(ReadsTheCorner(data), data, poisoning, minority=1)
    assert ignores == {"test_accuracy": 1.0, "minority_accuracy": 1.0, "attack_success": 0.0}
    always = corrective.scores(AlwaysSays(2), data, poisoning, minority=1)
    assert always["attack_success"] == 1.0 and always["test_accuracy"] == pytest.approx(1 / 3)
    assert always["minority_accuracy"] == 0.0
    both_ways = poison(data, 10, target={0: 1, 1: 0})
    assert corrective.scores(AlwaysSays(1), data, both_ways, minority=1)["attack_success"] == 0.5
    no_minority = corrective.scores(AlwaysSays(2), data, poisoning, minority=None)
    assert no_minority == {"test_accuracy": pytest.approx(1 / 3), "attack_success": 1.0}, "no minority, no column"


ROW_START = ("forget_accuracy", "unlearn_accuracy", "retain_accuracy", "test_accuracy", "mia_unlearned")
"""The first columns of every evaluate row of a request that is not a whole class."""


@pytest.fixture(scope="module")
def repair(tmp_path_factory, digits):
    """A backdoored 3-against-8 digits task: 20 threes carry the trigger and the label eight; and its repair."""
    config = TrainConfig(dataset="digits", arch="resnet9", width=8, epochs=12, batch_size=32, lr=0.05, augment=False)
    poisoning = corrective.backdoored_pair(
        digits, ("3", "8"), minority="8", ratio=0.8, poisons=20, minority_share=1.0, n_majority=140
    )
    clean = class_pair(digits, ("3", "8"), minority="8", ratio=0.8, n_majority=140)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNLEARN_ROOT", str(tmp_path_factory.mktemp("root")))
        yield corrective.Repair(config, clean, poisoning, minority=1, progress=False)


def test_the_threat_is_a_one_way_backdoor_into_the_minority_class(repair):
    assert repair.poisoning.targets == {0: 1}
    assert (repair.poisoning.sources == 0).all() and len(repair.poisoning.indices) == 20
    assert torch.equal(repair.clean.train_ids, repair.data.train_ids)


def test_retraining_without_every_poison_brings_attack_success_down_to_the_clean_models(repair):
    poisoned, clean = repair.do_nothing(), repair.clean_model()
    assert poisoned["into_minority_attack_success"] == poisoned["attack_success"], "the one direction attacked"
    assert "into_majority_attack_success" not in poisoned.index
    assert poisoned["attack_success"] > 0.8 > clean["attack_success"] + 0.5, "the backdoor was learned"
    full = repair.run("retrain", corrective_forget(repair.poisoning.indices, len(repair.data.train)))
    assert full["poisons_deleted"] == 20 and full["clean_deleted"] == 0 and full["found"] == 1.0
    assert abs(full["attack_success"] - clean["attack_success"]) < 0.1
    assert full["test_accuracy"] > 0.9
    assert full["gap_to_retrained"] == 0.0 and full["time_ratio"] == 1.0, "retraining is its own gold standard"


def test_a_repair_names_its_row_and_counts_what_it_deleted(repair):
    request = corrective_forget(repair.poisoning.indices, len(repair.data.train), found=0.5, clean_fraction=0.5)
    row = repair.run("cf_k", request, name="CF-1", k=1, epochs=1)
    assert row.name == "CF-1" and row["poisons_deleted"] == 10 and row["clean_deleted"] == 10
    assert set(corrective.SCORES) <= set(row.index) and row["seconds"] > 0
    retrained = repair.run("retrain", request)
    assert row["retrain_seconds"] == retrained["seconds"] > 0, "judged against retraining without the same set"
    assert row["mia_retrained"] == retrained["mia_unlearned"] and row["mia_original"] == retrained["mia_original"]
    assert list(row.index[: len(ROW_START)]) == list(ROW_START), "the evaluate row first, as every method's"
    assert list(row.index[-4:]) == ["deleted", "poisons_deleted", "clean_deleted", "found"]
    with pytest.raises(ValueError, match="training split of 10 examples"):
        repair.run("finetune", corrective_forget(torch.arange(3), 10))


def test_a_repair_row_without_judging_holds_only_the_scores_the_time_and_the_counts(repair):
    request = corrective_forget(repair.poisoning.indices, len(repair.data.train), found=0.5, clean_fraction=0.5)
    judged = repair.run("cf_k", request, name="CF-1", k=1, epochs=1)
    quick = repair.run("cf_k", request, name="CF-1", k=1, epochs=1, judge=False)
    assert quick.name == "CF-1"
    expected = [*corrective.SCORES, corrective.DIRECTIONS[0], "seconds", "deleted", "poisons_deleted"]
    assert list(quick.index) == [*expected, "clean_deleted", "found"]
    assert quick.to_dict() == judged[quick.index].to_dict(), "the same values as the judged row's"
    with pytest.raises(TypeError, match="judge must be True or False"):
        repair.run("cf_k", request, judge="no")


def test_the_backdoored_pair_places_the_poisons_as_asked(digits):
    options = dict(minority="8", ratio=0.5, poisons=10, n_majority=100)
    mixed = corrective.backdoored_pair(digits, ("3", "8"), minority_share=0.3, **options)
    assert mixed.targets == {0: 1, 1: 0}
    assert torch.bincount(mixed.sources, minlength=2).tolist() == [3, 7], "3 majority images labelled minority"
    into_majority = corrective.backdoored_pair(digits, ("3", "8"), minority_share=0.0, **options)
    assert into_majority.targets == {1: 0} and (into_majority.sources == 1).all()
    with pytest.raises(ValueError, match=r"minority_share must be in \[0, 1\]"):
        corrective.backdoored_pair(digits, ("3", "8"), minority_share=1.5, **options)
