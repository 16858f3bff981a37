import dataclasses
import os
import pickle
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from unlearnlib import checkpoints, imagedata, unlearn
from unlearnlib.checkpoints import (
    CheckpointMismatch,
    CorruptCheckpoint,
    CorruptCheckpointWarning,
    checkpoint_path,
    get_or_train,
    load_checkpoint,
)
from unlearnlib.config import UnusableRoot
from unlearnlib.datasets import load
from unlearnlib.forget import random_forget
from unlearnlib.train import TrainConfig, predict
from unlearnlib.unlearn.cache import get_or_unlearn

TINY = TrainConfig(dataset="digits", arch="resnet18", width=4, epochs=1, batch_size=64, lr=0.05)


def test_a_trained_model_is_saved_and_then_loaded(digits, isolated_root):
    first = get_or_train(TINY, digits, progress=False)
    assert not first.from_cache and first.path.is_file()
    assert first.path.parent == isolated_root / "checkpoints"
    second = get_or_train(TINY, digits, progress=False)
    assert second.from_cache and second.path == first.path
    assert torch.equal(
        predict(first.model, digits, digits.test).logits,
        predict(second.model, digits, digits.test).logits,
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
    left = [p.name for p in directory.iterdir() if p.name != ".locks"]  # the lock files stay, for the next run
    assert left == [], "neither a checkpoint nor a temporary file is left"
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


def test_data_a_test_makes_trains_under_its_own_name(digits):
    mine = dataclasses.replace(digits, info=dataclasses.replace(digits.info, name="my-digits"))
    trained = get_or_train(dataclasses.replace(TINY, dataset="my-digits"), mine, progress=False)
    assert trained.path.name.startswith("my-digits-resnet18-w4-")
    with pytest.raises(ValueError, match="this recipe names no dataset"):
        get_or_train(dataclasses.replace(TINY, dataset=None), mine, progress=False)


def test_bad_training_indices_are_refused(digits):
    with pytest.raises(ValueError, match="training indices are duplicated"):
        get_or_train(TINY, digits, torch.tensor([1, 1, 2]), progress=False)
    with pytest.raises(ValueError, match="training indices out of range"):
        get_or_train(TINY, digits, torch.tensor([0, len(digits.train)]), progress=False)


def test_one_model_per_seed_each_cached_on_its_own(digits):
    tiny = dataclasses.replace(TINY, arch="resnet9")
    models = checkpoints.get_or_train_seeds(tiny, digits, [3, 4], torch.arange(100), progress=False)
    assert [m.config.seed for m in models] == [3, 4] and models[0].path != models[1].path
    first, second = (predict(m.model, digits, digits.test).logits for m in models)
    assert not torch.equal(first, second), "different seeds give different models"
    again = checkpoints.get_or_train_seeds(tiny, digits, [4], torch.arange(100), progress=False)[0]
    assert again.from_cache and again.path == models[1].path
    with pytest.raises(ValueError, match="seeds must differ"):
        checkpoints.get_or_train_seeds(tiny, digits, [1, 1])


# --------------------------------------------------------------------------- recovery, locking, sharing

SMALL = torch.arange(200)
"""Training examples for the recovery tests: few, so each retraining takes a fraction of a second."""


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path):
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))


def _without_state_dict(path):
    payload = torch.load(path, weights_only=True)
    del payload["state_dict"]
    torch.save(payload, path)


def _nan_weights(path):
    payload = torch.load(path, weights_only=True)
    name = next(key for key, value in payload["state_dict"].items() if value.is_floating_point())
    payload["state_dict"][name][0] = float("nan")
    torch.save(payload, path)


def _not_a_dict(path):
    torch.save(torch.zeros(3), path)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_truncated, "unreadable"),
        (_random_bytes, "unreadable"),
        (_not_a_dict, "not a checkpoint"),
        (_without_state_dict, "missing keys state_dict"),
        (_nan_weights, "holding non-finite weights"),
    ],
)
def test_a_corrupted_checkpoint_is_set_aside_and_the_model_trained_again(digits, damage, problem):
    first = get_or_train(TINY, digits, SMALL, progress=False)
    names = [".corrupt", ".corrupt.1"] if damage is _truncated else [".corrupt"]  # a second time: numbered
    for attempt, aside in enumerate(names):
        damage(first.path)
        with pytest.raises(CorruptCheckpoint, match=f"{first.path.name} is {problem}"):
            load_checkpoint(first.path, TINY, first.train_ids, digits)
        with pytest.warns(CorruptCheckpointWarning, match=rf"{first.path}.* is {problem}.*moved it to .*{aside}"):
            again = get_or_train(TINY, digits, SMALL, progress=False)
        assert not again.from_cache and again.path == first.path, "trained again, into the same place"
        assert first.path.with_name(first.path.name + aside).is_file(), f"attempt {attempt}: set aside as {aside}"
        assert get_or_train(TINY, digits, SMALL, progress=False).from_cache, "the new checkpoint is good"


def test_a_mismatched_checkpoint_stays_an_error_naming_the_file(digits):
    trained = get_or_train(TINY, digits, SMALL, progress=False)
    payload = torch.load(trained.path, weights_only=True)
    payload["config"]["lr"] = 0.5
    torch.save(payload, trained.path)
    with pytest.raises(CheckpointMismatch, match=rf"{trained.path} was trained with a different config: lr=0.5"):
        get_or_train(TINY, digits, SMALL, progress=False)
    assert trained.path.is_file(), "a mismatch is not corruption: the file stays where it is"


def test_stale_temporary_files_of_a_checkpoint_are_removed(digits):
    path = checkpoint_path(TINY, digits.train_ids[SMALL], digits)
    path.parent.mkdir(parents=True)
    stale = path.with_name(f".{path.name}.killed.tmp")
    stale.write_bytes(b"half a checkpoint")
    other = path.with_name(".someone-else.pt.x.tmp")
    other.write_bytes(b"another checkpoint's save")
    get_or_train(TINY, digits, SMALL, progress=False)
    assert not stale.exists(), "the stale temporary file of this checkpoint is gone"
    assert other.exists(), "another checkpoint's temporary file is left to its own lock"


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_checkpoints_get_the_mode_of_a_new_file_so_a_group_can_share_them(digits, umask):
    old = os.umask(umask)
    try:
        trained = get_or_train(TINY, digits, SMALL, progress=False)
    finally:
        os.umask(old)
    mode = stat.S_IMODE(trained.path.stat().st_mode)
    assert mode == 0o666 & ~umask and mode & stat.S_IRGRP, oct(mode)


def test_training_needs_a_writable_checkpoint_folder_before_it_starts(digits, isolated_root, monkeypatch):
    monkeypatch.setattr(checkpoints, "fit", lambda *args, **kwargs: pytest.fail("trained before checking the folder"))
    blocker = isolated_root / "a-file"
    blocker.write_text("")
    with pytest.raises(UnusableRoot, match="a-file is a file, not a folder"):
        get_or_train(TINY, digits, SMALL, directory=blocker, progress=False)
    with pytest.raises(UnusableRoot, match="cannot be created: .*a-file is a file"):
        get_or_train(TINY, digits, SMALL, directory=blocker / "checkpoints", progress=False)


CHILD = """
import sys, time
from pathlib import Path
import torch
from unlearnlib import checkpoints
from unlearnlib.datasets import load
from unlearnlib.train import TrainConfig

torch.set_num_threads(1)
name, root = sys.argv[1], Path(sys.argv[2])
real_fit = checkpoints.fit

def slow_fit(*args, **kwargs):
    time.sleep(1.0)  # long enough for the other process to ask for the same model meanwhile
    return real_fit(*args, **kwargs)

checkpoints.fit = slow_fit
digits = load("digits", device="cpu")
config = TrainConfig(dataset="digits", arch="resnet9", width=4, epochs=1, batch_size=64, lr=0.05)
(root / f"ready-{name}").touch()
deadline = time.monotonic() + 60
while len(list(root.glob("ready-*"))) < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
trained = checkpoints.get_or_train(config, digits, torch.arange(100), progress=False)
print("cached" if trained.from_cache else "trained")
"""


def test_two_processes_asking_for_one_model_train_it_once(isolated_root):
    # Two separate interpreters, as two users' jobs sharing a cache would be, started together.
    env = os.environ | {"UNLEARN_ROOT": str(isolated_root), "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, name, str(isolated_root)], stdout=subprocess.PIPE, text=True, env=env
        )
        for name in "ab"
    ]
    outcomes = sorted(process.communicate(timeout=180)[0].strip() for process in processes)
    assert [p.returncode for p in processes] == [0, 0]
    assert outcomes == ["cached", "trained"], "one process trained, the other waited for it and loaded its model"
    assert len(list((isolated_root / "checkpoints").glob("*.pt"))) == 1


def test_an_unlearned_model_is_made_once_and_then_loaded(digits, isolated_root):
    original = get_or_train(TINY, digits, progress=False)
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    first = get_or_unlearn(unlearn.finetune, original, request, digits, epochs=1, batch_size=64)
    assert not first.from_cache and first.path.parent == isolated_root / "checkpoints" / "unlearned"
    again = get_or_unlearn(unlearn.finetune, original, request, digits, epochs=1, batch_size=64, seed=0)
    assert again.from_cache and again.path == first.path, "a default given explicitly finds the same entry"
    assert again.seconds == first.seconds, "the run time is the first run's"
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))
    other = get_or_unlearn(unlearn.finetune, original, request, digits, epochs=1, batch_size=64, seed=1)
    assert not other.from_cache and other.path != first.path
    elsewhere = random_forget(len(digits.train), fraction=0.1, seed=1)
    assert get_or_unlearn(unlearn.finetune, original, elsewhere, digits, epochs=1, batch_size=64).path != first.path
    validation = imagedata.Split(digits.test.images[:20], digits.test.labels[:20])  # a method may learn from it
    with_validation = dataclasses.replace(digits, validation=validation)
    assert with_validation.fingerprint == digits.fingerprint, "the trained model is the same"
    assert (
        get_or_unlearn(unlearn.finetune, original, request, with_validation, epochs=1, batch_size=64).path != first.path
    )
    with pytest.raises(TypeError, match="finetune has no hyperparameter epoch"):
        get_or_unlearn(unlearn.finetune, original, request, digits, epoch=1)


def test_a_corrupted_unlearned_model_is_set_aside_and_made_again(digits):
    original = get_or_train(TINY, digits, progress=False)
    request = random_forget(len(digits.train), fraction=0.1, seed=0)
    first = get_or_unlearn(unlearn.cf_k, original, request, digits, epochs=1, k=1)
    first.path.write_bytes(b"not a checkpoint")
    with pytest.warns(checkpoints.CorruptCheckpointWarning, match="unreadable"):
        again = get_or_unlearn(unlearn.cf_k, original, request, digits, epochs=1, k=1)
    assert not again.from_cache and first.path.with_name(first.path.name + ".corrupt").is_file()


def test_a_cached_model_is_unwrapped_and_anything_else_refused():
    model = torch.nn.Linear(2, 1)
    config = TrainConfig(dataset="digits", arch="resnet9", width=8, epochs=1, batch_size=32, lr=0.05)
    cached = checkpoints.TrainedModel(model, config, torch.arange(3), None, 0.0, None, False)
    assert checkpoints.network(cached) is model and checkpoints.network(model) is model
    with pytest.raises(TypeError) as raised:
        checkpoints.network("model")
    assert str(raised.value) == "model must be a network (an nn.Module) or a TrainedModel, got str"
