import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from unlearnlib import config, profiles, session
from unlearnlib.datasets import DatasetUnavailable
from unlearnlib.train import TrainConfig


def test_profiles_are_chosen_by_name_then_environment_then_hardware(monkeypatch):
    assert profiles.choose_profile("smoke")[0].name == "smoke"
    monkeypatch.setenv("UNLEARN_PROFILE", "cpu")
    profile, why = profiles.choose_profile()
    assert profile.name == "cpu" and "UNLEARN_PROFILE=cpu" in why
    monkeypatch.delenv("UNLEARN_PROFILE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.choose_profile()[0].name == "gpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    profile, why = profiles.choose_profile()
    assert profile.name == "cpu" and "no CUDA" in why


def test_an_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("UNLEARN_PROFILE", "laptop")
    with pytest.raises(ValueError, match="unknown profile 'laptop'; choose one of cpu, gpu, smoke"):
        profiles.choose_profile()


def test_the_profiles_follow_the_design():
    smoke, cpu, gpu = (profiles.PROFILES[name] for name in ("smoke", "cpu", "gpu"))
    assert smoke.datasets == cpu.datasets == ("fashion-mnist", "digits")
    assert smoke.n_train < cpu.n_train and not smoke.recipe.augment and not cpu.recipe.augment and gpu.recipe.augment
    assert gpu.datasets[0] == "cifar10" and gpu.recipe.width == 64 and gpu.recipe.arch == "resnet18"
    assert smoke.recipe.width < cpu.recipe.width < gpu.recipe.width


def test_seeding_fixes_every_generator():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    config.seed_everything(7)
    first = draw()
    config.seed_everything(7)
    assert draw() == first


def test_paths_follow_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("UNLEARN_ROOT", str(tmp_path / "course"))
    assert config.data_dir() == tmp_path / "course" / "data"
    assert config.checkpoint_dir() == tmp_path / "course" / "checkpoints"


def test_device_choice(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.choose_device().type == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.choose_device("cuda")


def test_the_profile_falls_back_to_an_available_dataset(monkeypatch):
    available = {
        "cifar10": (False, "not in data/ and its server is unreachable"),
        "fashion-mnist": (True, "on disk"),
        "digits": (True, "on disk"),
    }
    monkeypatch.setattr(session, "availability", lambda name: available[name])
    name, why = session.choose_dataset(profiles.PROFILES["gpu"])
    assert name == "fashion-mnist" and "skipped cifar10" in why


def test_an_explicit_dataset_must_be_available(monkeypatch):
    monkeypatch.setattr(session, "availability", lambda name: (False, "not in data/"))
    monkeypatch.setenv("UNLEARN_DATASET", "cifar10")
    with pytest.raises(DatasetUnavailable, match="'cifar10' was asked for but is not in data/"):
        session.choose_dataset(profiles.PROFILES["gpu"])


def test_the_dataset_variable_overrides_the_profile(monkeypatch):
    monkeypatch.setenv("UNLEARN_DATASET", "digits")
    name, why = session.choose_dataset(profiles.PROFILES["cpu"])
    assert name == "digits" and why == "UNLEARN_DATASET=digits"
    monkeypatch.setenv("UNLEARN_DATASET", "svhn")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        session.choose_dataset(profiles.PROFILES["cpu"])


def test_start_prints_its_choices_and_loads_the_profile_data(capsys):
    started = session.start("smoke", dataset="digits")
    out = capsys.readouterr().out
    assert "profile  smoke" in out and "dataset  digits" in out and "device   cpu" in out
    loaded = started.load_data()
    assert loaded.info.name == "digits" and len(loaded.train) == profiles.DIGITS["n_train"]
    assert started.recipe.epochs == profiles.DIGITS["epochs"]


def test_the_session_fills_the_profiles_recipe_with_its_dataset_and_seed():
    started = session.start("smoke", dataset="digits", seed=4, verbose=False)
    assert started.recipe.dataset == "digits" and started.recipe.seed == 4
    assert started.recipe == TrainConfig(
        dataset="digits", seed=4, **{k: getattr(started.profile.recipe, k) for k in profiles.RECIPE_SETTINGS}
    )
    assert started.profile.recipe.dataset is None, "the profile keeps a template"


def test_a_profiles_recipe_is_a_template_and_trains_nothing(digits):
    with pytest.raises(ValueError, match="its recipe is a template"):
        dataclasses.replace(profiles.PROFILES["smoke"], recipe=TrainConfig(dataset="digits"))
    with pytest.raises(ValueError, match="this recipe names no dataset"):
        profiles.PROFILES["smoke"].recipe.check_trains(digits)


def test_a_profile_adjusts_its_settings_on_a_dataset():
    cpu = profiles.PROFILES["cpu"]
    on_digits = cpu.for_dataset("digits")
    assert on_digits.name == "cpu" and on_digits.n_train == profiles.DIGITS["n_train"] != cpu.n_train
    assert on_digits.recipe.weight_decay == profiles.DIGITS["weight_decay"] and on_digits.n_test == cpu.n_test
    assert cpu.for_dataset("fashion-mnist") == cpu
    with pytest.raises(ValueError, match=r"unknown profile settings \['depth'\]"):
        cpu.adjusted(depth=3)
    with pytest.raises(ValueError, match=r"n_train must be positive \(at least 1\), got 0"):
        cpu.adjusted(n_train=0)


def test_every_profile_runs_digits_with_one_recipe():
    recipes = {name: profile.for_dataset("digits") for name, profile in profiles.PROFILES.items()}
    settings = {
        name: {key: getattr(p.recipe if key in profiles.RECIPE_SETTINGS else p, key) for key in profiles.DIGITS}
        for name, p in recipes.items()
    }
    assert all(values == profiles.DIGITS for values in settings.values())


def test_overrides_are_typed_and_checked(monkeypatch):
    monkeypatch.setenv("UNLEARN_OVERRIDES", " epochs=1, n_train=none ,augment=yes, lr=0.5,arch=resnet18")
    assert profiles.overrides() == {"epochs": 1, "n_train": None, "augment": True, "lr": 0.5, "arch": "resnet18"}
    for text, message in [
        ("epoch=1", "unknown setting 'epoch'"),
        ("epochs", "write each setting as name=value"),
        ("epochs=2.5", "epochs must be an integer, got '2.5'"),
        ("lr=fast", "lr must be a number"),
        ("augment=maybe", "augment must be true or false"),
    ]:
        monkeypatch.setenv("UNLEARN_OVERRIDES", text)
        with pytest.raises(ValueError, match=message):
            profiles.overrides()


def test_start_applies_the_dataset_settings_and_the_overrides(capsys, monkeypatch):
    monkeypatch.setenv("UNLEARN_OVERRIDES", "epochs=2")
    started = session.start("smoke", dataset="digits")
    out = capsys.readouterr().out
    assert "on digits: arch=resnet9" in out and "UNLEARN_OVERRIDES: epochs=2" in out
    assert started.recipe.width == profiles.DIGITS["width"] and started.recipe.epochs == 2
    assert started.recipe.weight_decay == profiles.DIGITS["weight_decay"]


def test_the_data_set_up_says_what_it_uses_and_how_to_get_the_better_dataset(monkeypatch, capsys):
    monkeypatch.setattr(session, "availability", lambda name: (name == "digits", "not in data/, server unreachable"))
    session.main(["--profile", "cpu"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("profile  cpu: ") and "asked for by name" in out[0]
    assert out[1].startswith("dataset  digits: profile cpu's choice") and "skipped fashion-mnist" in out[1]
    assert "scikit-learn's bundled copy" in out[2]
    assert out[3].startswith("better   fashion-mnist") and "sudo apt-get install dataset-fashion-mnist" in out[3]
    assert "downloaded into" in out[3]


def test_the_data_set_up_names_where_the_dataset_is_read_from(monkeypatch):
    monkeypatch.setattr(session, "availability", lambda name: (True, "on disk"))
    text = session.describe_data("smoke")
    assert "dataset  fashion-mnist: profile smoke's choice" in text and "better" not in text
    assert "Debian's dataset-fashion-mnist" in text or "read from" in text
    monkeypatch.setattr(session, "availability", lambda name: (True, "downloadable"))
    assert "it will be downloaded into" in session.describe_data("gpu")


def test_the_data_set_up_command_gives_one_line_errors(monkeypatch, capsys):
    monkeypatch.setattr(session, "availability", lambda name: (False, "not in data/"))
    with pytest.raises(SystemExit) as exited:
        session.main(["--dataset", "cifar10"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exited.value.code == 2 and "error: dataset 'cifar10' was asked for but is not in data/" in error
    assert "To get it: online, it is downloaded into" in error
    monkeypatch.setenv("UNLEARN_PROFILE", "laptop")
    with pytest.raises(SystemExit):
        session.main([])
    assert "error: unknown profile 'laptop'" in capsys.readouterr().err


def test_a_root_that_is_a_file_fails_when_the_session_starts(monkeypatch, tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("UNLEARN_ROOT", str(tmp_path / "not-a-folder"))
    with pytest.raises(
        config.UnusableRoot, match=r"course folder .*not-a-folder is a file, not a folder; set UNLEARN_ROOT"
    ):
        session.start("smoke", "digits", verbose=False)
    monkeypatch.setenv("UNLEARN_ROOT", str(tmp_path / "not-a-folder" / "below"))
    with pytest.raises(config.UnusableRoot, match="cannot be created: .*not-a-folder is a file"):
        session.start("smoke", "digits", verbose=False)


def test_a_read_only_root_fails_when_the_session_starts(monkeypatch, tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    real_access = os.access
    # As another user than root sees it (root may write anywhere): the folder's mode forbids writing.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode))
    monkeypatch.setenv("UNLEARN_ROOT", str(read_only))
    with pytest.raises(config.UnusableRoot, match="read-only is not writable; set UNLEARN_ROOT"):
        session.start("smoke", "digits", verbose=False)
    monkeypatch.setenv("UNLEARN_ROOT", str(read_only / "course"))
    with pytest.raises(config.UnusableRoot, match="cannot be created: .*read-only is not writable"):
        session.start("smoke", "digits", verbose=False)
    monkeypatch.setenv("UNLEARN_ROOT", str(tmp_path / "new" / "course"))
    assert session.start("smoke", "digits", verbose=False).dataset == "digits", "a root that can be created is fine"
    assert not (tmp_path / "new").exists(), "starting a session creates nothing"


def test_a_checkpoint_folder_that_is_a_file_fails_when_the_session_starts(tmp_path):
    (tmp_path / "checkpoints").write_text("")
    with pytest.raises(config.UnusableRoot, match="checkpoint folder .*checkpoints is a file"):
        session.start("smoke", "digits", verbose=False)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("mps", r"UNLEARN_DEVICE='mps' asked for, but PyTorch's MPS backend is not available; choose one of cpu"),
        ("cuda", "UNLEARN_DEVICE='cuda' asked for, but CUDA is not available; choose one of cpu"),
        ("tpu", "UNLEARN_DEVICE='tpu' is not a device; choose one of cpu"),
        ("meta", "'meta' is not supported by the course; choose one of cpu"),
    ],
)
def test_an_unusable_device_fails_when_the_session_starts(monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("UNLEARN_DEVICE", device)
    with pytest.raises(ValueError, match=message):
        session.start("smoke", "digits", verbose=False)


def test_a_cuda_device_must_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert config.choose_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(
        ValueError, match=r"device 'cuda:2' asked for, but this machine has 2 CUDA.*cuda, cuda:0, cuda:1"
    ):
        config.choose_device("cuda:2")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert config.choose_device("mps").type == "mps"


def test_a_bad_seed_fails_when_the_session_starts():
    with pytest.raises(TypeError, match="seed must be a whole number"):
        session.start("smoke", "digits", seed=0.5, verbose=False)
    with pytest.raises(ValueError, match="seed must be in 0..4294967295"):
        session.start("smoke", "digits", seed=-1, verbose=False)
