import dataclasses
import pickle

import pytest
import torch

from unlearnlib import checkpoints
from unlearnlib.checkpoints import CheckpointMismatch, checkpoint_path, get_or_train, load_checkpoint
from unlearnlib.data import load
from unlearnlib.train import TrainConfig, evaluate_model

TINY = TrainConfig(dataset="digits", arch="resnet18", width=4, epochs=1, batch_size=64, lr=0.05)


def test_a_trained_model_is_saved_and_then_loaded(digits, isolated_root):
    first = get_or_train(TINY, digits, progress=False)
    assert not first.from_cache and first.path.is_file()
    assert first.path.parent == isolated_root / "checkpoints"
    second = get_or_train(TINY, digits, progress=False)
    assert second.from_cache and second.path == first.path
    assert torch.equal(
        evaluate_model(first.model, digits, digits.test).logits,
        evaluate_model(second.model, digits, digits.test).logits,
    )
    assert second.history == first.history and torch.equal(second.train_ids, first.train_ids)


def test_the_key_covers_config_training_examples_and_the_loaded_split(digits):
    ids = digits.train_ids
    base = checkpoint_path(TINY, ids, digits)
    assert base == checkpoint_path(TINY, ids.clone(), digits)
    assert base != checkpoint_path(dataclasses.replace(TINY, seed=1), ids, digits)
    assert base != checkpoint_path(dataclasses.replace(TINY, lr=0.06), ids, digits)
    assert base != checkpoint_path(TINY, ids[1:], digits)
    smaller = load("digits", n_train=1000, device="cpu")
    assert checkpoint_path(TINY, smaller.train_ids, smaller) != checkpoint_path(TINY, smaller.train_ids, digits)


def test_the_key_tells_changed_images_or_labels_apart(digits):
    """A poisoned or relabelled copy keeps the example ids and nearly the same statistics, so only the
    content can tell its models apart from the clean data's."""
    ids = digits.train_ids
    base = checkpoint_path(TINY, ids, digits)
    reloaded = load("digits", device="cpu")
    assert checkpoint_path(TINY, ids, reloaded) == base
    labels = digits.train.labels.clone()
    labels[0] = (labels[0] + 1) % 10
    relabelled = dataclasses.replace(digits, train=dataclasses.replace(digits.train, labels=labels))
    assert checkpoint_path(TINY, ids, relabelled) != base
    images = digits.train.images.clone()
    images[0, 0, 0, 0] ^= 1
    repainted = dataclasses.replace(digits, train=dataclasses.replace(digits.train, images=images))
    assert checkpoint_path(TINY, ids, repainted) != base


def test_training_indices_are_stored_as_full_dataset_ids(digits):
    retain = torch.arange(100, 300)
    trained = get_or_train(TINY, digits, retain, progress=False)
    assert torch.equal(trained.train_ids, digits.train_ids[retain])
    payload = torch.load(trained.path, weights_only=True)
    assert torch.equal(payload["train_ids"], digits.train_ids[retain])


def test_an_interrupted_write_leaves_no_broken_checkpoint(digits, monkeypatch, isolated_root):
    real_save = torch.save

    def save_then_die(obj, path):
        with open(path, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        get_or_train(TINY, digits, progress=False)
    directory = isolated_root / "checkpoints"
    assert list(directory.iterdir()) == [], "neither a checkpoint nor a temporary file is left"
    monkeypatch.setattr(torch, "save", real_save)
    trained = get_or_train(TINY, digits, progress=False)
    assert not trained.from_cache and get_or_train(TINY, digits, progress=False).from_cache


def test_a_checkpoint_of_another_config_is_refused_naming_the_difference(digits):
    trained = get_or_train(TINY, digits, progress=False)
    other = dataclasses.replace(TINY, lr=0.2, epochs=3)
    with pytest.raises(CheckpointMismatch, match=r"epochs=1 \(asked for 3\), lr=0.05 \(asked for 0.2\)"):
        load_checkpoint(trained.path, other, trained.train_ids, digits)


def test_a_checkpoint_of_other_training_examples_is_refused(digits):
    trained = get_or_train(TINY, digits, progress=False)
    with pytest.raises(CheckpointMismatch, match="other examples"):
        load_checkpoint(trained.path, TINY, trained.train_ids[:-1], digits)


def test_a_checkpoint_expecting_other_normalisation_is_refused(digits):
    trained = get_or_train(TINY, digits, progress=False)
    shifted = load("digits", device="cpu")
    shifted.mean = shifted.mean + 0.1
    with pytest.raises(CheckpointMismatch, match="normalised with mean"):
        load_checkpoint(trained.path, TINY, trained.train_ids, shifted)


def test_a_checkpoint_for_another_architecture_is_refused(digits):
    trained = get_or_train(TINY, digits, progress=False)
    payload = torch.load(trained.path, weights_only=True)
    payload["config"] = dataclasses.replace(TINY, width=8).to_dict()
    torch.save(payload, trained.path)
    with pytest.raises(CheckpointMismatch, match="does not fit"):
        load_checkpoint(trained.path, dataclasses.replace(TINY, width=8), trained.train_ids, digits)


class _Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_checkpoints_are_loaded_with_weights_only(digits, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoints.FORMAT, "config": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path, TINY, digits.train_ids, digits)


def test_config_and_data_must_agree(fake_cifar10, digits):
    cifar = load("cifar10", device="cpu")
    with pytest.raises(ValueError, match="config is for digits but the data is cifar10"):
        get_or_train(TINY, cifar, progress=False)


def test_bad_training_indices_are_refused(digits):
    with pytest.raises(ValueError, match="training indices are duplicated"):
        get_or_train(TINY, digits, torch.tensor([1, 1, 2]), progress=False)
    with pytest.raises(ValueError, match="training indices out of range"):
        get_or_train(TINY, digits, torch.tensor([0, len(digits.train)]), progress=False)


def test_one_model_per_seed_each_cached_on_its_own(digits):
    tiny = dataclasses.replace(TINY, arch="resnet9")
    models = checkpoints.get_or_train_seeds(tiny, digits, [3, 4], torch.arange(100), progress=False)
    assert [m.config.seed for m in models] == [3, 4] and models[0].path != models[1].path
    first, second = (evaluate_model(m.model, digits, digits.test).logits for m in models)
    assert not torch.equal(first, second), "different seeds give different models"
    again = checkpoints.get_or_train_seeds(tiny, digits, [4], torch.arange(100), progress=False)[0]
    assert again.from_cache and again.path == models[1].path
    with pytest.raises(ValueError, match="seeds must differ"):
        checkpoints.get_or_train_seeds(tiny, digits, [1, 1])
