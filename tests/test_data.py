import dataclasses
import gzip
import hashlib
import socket
import struct
import tarfile
import time

import numpy as np
import pytest
import torch

from unlearnlib import datasets, imagedata
from unlearnlib.datasets import DatasetUnavailable, download, load, read_idx
from unlearnlib.imagedata import check_indices


def test_digits_are_uint8_tensors_on_the_device(digits):
    assert digits.train.images.dtype == torch.uint8 and digits.train.images.shape[1:] == (1, 8, 8)
    assert digits.train.labels.dtype == torch.int64
    assert len(digits.train) + len(digits.test) == 1797
    assert digits.train.device.type == "cpu" and digits.test.device.type == "cpu"
    assert set(digits.train.labels.tolist()) == set(range(10))
    assert digits.train.images.max() == 255, "digits' 0..16 scale is stretched to 0..255"


def test_normalisation_statistics_are_those_of_the_training_split(digits):
    pixels = digits.train.images.float() / 255
    assert torch.allclose(digits.mean, pixels.mean((0, 2, 3)))
    assert torch.allclose(digits.std, pixels.std((0, 2, 3)))


def test_fake_cifar10_in_torchvision_layout_loads(fake_cifar10, isolated_root):
    loaded = load("cifar10", n_validation=0, device="cpu")
    assert loaded.validation is None
    assert loaded.info.name == "cifar10" and loaded.info.channels == 3 and loaded.info.size == 32
    assert loaded.info.augmentation.crop_padding == 4 and loaded.info.augmentation.flip
    assert torch.equal(loaded.train.images, torch.from_numpy(fake_cifar10["train_x"]))
    assert loaded.train.labels.tolist() == fake_cifar10["train_y"]
    assert torch.equal(loaded.test.images, torch.from_numpy(fake_cifar10["test_x"]))
    assert loaded.test.labels.tolist() == fake_cifar10["test_y"]
    assert "cifar-10-batches-py" in loaded.source
    assert loaded.info.classes == tuple(f"c{i}" for i in range(10)), "class names come from batches.meta"


def test_subsets_are_fixed_by_the_seed(fake_cifar10):
    a = load("cifar10", n_train=10, n_test=4, seed=3, device="cpu")
    b = load("cifar10", n_train=10, n_test=4, seed=3, device="cpu")
    c = load("cifar10", n_train=10, n_test=4, seed=4, device="cpu")
    assert len(a.train) == 10 and len(a.test) == 4
    assert torch.equal(a.train_ids, b.train_ids) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train_ids, c.train_ids)
    full = load("cifar10", device="cpu")
    assert torch.equal(a.train.images, full.train.images[a.train_ids])


def test_subsets_keep_each_class_share(digits):
    subset = load("digits", n_train=400, n_test=100, seed=5, device="cpu")
    for part, size, whole in ((subset.train, 400, digits.train), (subset.test, 100, digits.test)):
        counts = torch.bincount(part.labels, minlength=10).double()
        expected = torch.bincount(whole.labels, minlength=10).double() * size / len(whole)
        assert len(part) == size and ((counts - expected).abs() < 1).all(), "each class keeps its share, rounded"


def rows(split: imagedata.Split) -> list[tuple[bytes, int]]:
    """A split's examples as a sorted list of (image bytes, label): what it holds, in no order."""
    return sorted(zip((image.numpy().tobytes() for image in split.images), split.labels.tolist()))


def test_the_validation_split_is_held_out_of_the_test_data_disjoint_and_stratified():
    whole, digits = load("digits", n_validation=0, device="cpu").test, load("digits", device="cpu")
    assert len(digits.train) + len(digits.test) + len(digits.validation) == 1797
    assert len(digits.validation) == round(0.2 * len(whole)) and len(digits.test) == len(whole) - len(digits.validation)
    assert sorted(rows(digits.test) + rows(digits.validation)) == rows(whole), "together they are the test data"
    counts = torch.bincount(digits.validation.labels, minlength=10).double()
    expected = torch.bincount(whole.labels, minlength=10).double() * len(digits.validation) / len(whole)
    assert ((counts - expected).abs() < 1).all(), "each class keeps its share, rounded"


def test_a_test_split_that_leaves_test_data_unused_is_unchanged_and_the_validation_comes_from_the_rest():
    alone = load("digits", n_test=100, n_validation=0, device="cpu")
    both = load("digits", n_test=100, device="cpu")
    assert torch.equal(both.test.images, alone.test.images) and torch.equal(both.test.labels, alone.test.labels)
    assert len(both.validation) == 72 and not set(rows(both.validation)) & set(rows(both.test))
    asked = load("digits", n_test=100, n_validation=50, device="cpu")
    assert len(asked.validation) == 50 and torch.equal(asked.test.images, alone.test.images)


def test_a_validation_split_that_would_leave_no_test_data_is_refused():
    with pytest.raises(ValueError, match=r"^n_validation=360 would leave no test examples"):
        load("digits", n_validation=360, device="cpu")
    with pytest.raises(ValueError, match=r"^n_validation must be"):
        load("digits", n_validation=-1, device="cpu")


def _write_idx(path, array, compress):
    header = b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_read_back(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    _write_idx(path, array, compress)
    assert np.array_equal(read_idx(path), array)


def test_truncated_or_foreign_idx_files_are_refused(tmp_path):
    path = tmp_path / "x.idx"
    _write_idx(path, np.zeros((4, 5), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(path)


def test_fashion_mnist_in_torchvision_layout_loads(isolated_root):
    raw = isolated_root / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x_train, x_test = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 256, (3, 28, 28))
    y_train, y_test = rng.integers(0, 10, 7), rng.integers(0, 10, 3)
    for name, array in [
        ("train-images-idx3-ubyte", x_train),
        ("train-labels-idx1-ubyte", y_train),
        ("t10k-images-idx3-ubyte", x_test),
        ("t10k-labels-idx1-ubyte", y_test),
    ]:
        _write_idx(raw / name, array, compress=False)
    loaded = load("fashion-mnist", n_validation=0, device="cpu")
    assert loaded.train.images.shape == (7, 1, 28, 28)
    assert np.array_equal(loaded.train.images[:, 0].numpy(), x_train)
    assert loaded.test.labels.tolist() == y_test.tolist()
    assert loaded.info.classes[9] == "Ankle boot"


@pytest.mark.skipif(not datasets.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_fashion_mnist_from_debian():
    loaded = load("fashion-mnist", n_test=1000, device="cpu")
    assert len(loaded.train) == 60_000 and len(loaded.test) == 1000
    assert loaded.train.images.shape[1:] == (1, 28, 28)
    counts = torch.bincount(loaded.train.labels, minlength=10)
    assert (counts == 6000).all(), "Fashion-MNIST has 6000 training images per class"
    assert str(datasets.DEBIAN_FASHION_MNIST) in loaded.source


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10.*digits"):
        load("imagenet")


def test_offline_load_fails_fast_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(datasets, "url_reachable", lambda url, timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="cannot be reached.*UNLEARN_DATASET=digits"):
        load("cifar10", device="cpu")
    assert time.perf_counter() - start < 5


def test_the_network_probe_gives_up_on_a_silent_server_within_its_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        start = time.perf_counter()
        assert not datasets.url_reachable(f"http://127.0.0.1:{server.getsockname()[1]}/file", timeout=1.0)
    assert time.perf_counter() - start < 3


def test_the_network_probe_refuses_what_is_not_there():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not datasets.url_reachable(f"http://127.0.0.1:{port}/nothing-listens-here", timeout=1.0)


def _md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


@pytest.mark.parametrize("already_there", [None, b"half an arch"], ids=["fresh", "corrupt copy"])
def test_download_verifies_the_checksum_and_replaces_a_corrupt_copy(tmp_path, already_there):
    source = tmp_path / "source.bin"
    source.write_bytes(b"the real archive")
    target = tmp_path / "data" / "archive.bin"
    if already_there is not None:
        target.parent.mkdir()
        target.write_bytes(already_there)
    download(source.as_uri(), target, _md5(b"the real archive"))
    assert target.read_bytes() == b"the real archive"


def test_a_download_that_stays_corrupt_is_refused_and_removed(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"tampered")
    target = tmp_path / "archive.bin"
    with pytest.raises(DatasetUnavailable, match="checksum"):
        download(source.as_uri(), target, _md5(b"the real archive"))
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_an_unreachable_download_leaves_nothing_behind(tmp_path):
    target = tmp_path / "archive.bin"
    with pytest.raises(DatasetUnavailable, match="could not download"):
        download((tmp_path / "missing.bin").as_uri(), target, "0" * 32)
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_check_indices_accepts_and_sorts():
    assert check_indices([3, 0, 2], 4).tolist() == [0, 2, 3]
    assert check_indices(np.array([1]), 2).dtype == torch.int64


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([], "empty"),
        ([0, 5], "out of range: 5 is not in 0..4"),
        ([-1, 2], "out of range: -1"),
        ([1, 2, 2], r"duplicated: \[2\]"),
        ([0.5, 1.0], "integers"),
        ([[0, 1]], "one-dimensional"),
    ],
)
def test_check_indices_names_the_problem(indices, message):
    with pytest.raises(ValueError, match=message):
        check_indices(torch.tensor(indices) if indices else torch.tensor([], dtype=torch.long), 5)


def test_split_subset_and_validation(tiny_split):
    part = tiny_split.subset(torch.tensor([4, 1]))
    assert torch.equal(part.images, tiny_split.images[[4, 1]]) and part.labels.tolist() == [1, 1]
    with pytest.raises(ValueError, match="uint8"):
        imagedata.Split(tiny_split.images.float(), tiny_split.labels)
    with pytest.raises(ValueError, match="labels of shape"):
        imagedata.Split(tiny_split.images, tiny_split.labels[:5])


def test_class_lookup_by_name_and_index(digits):
    info = digits.info
    assert info.class_index("7") == 7 and info.class_index(3) == 3
    with pytest.raises(ValueError, match="unknown class 'cat'"):
        info.class_index("cat")
    with pytest.raises(ValueError, match=r"classes are 0\.\.9"):
        info.class_index(10)


def test_cifar_is_downloaded_verified_and_extracted(tmp_path, make_fake_cifar):
    staging = tmp_path / "staging"
    written = make_fake_cifar(staging)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")

    class Described:
        url = archive.as_uri()
        filename = "cifar-10-python.tar.gz"
        tgz_md5 = datasets.md5_of(archive)
        base_folder = "cifar-10-batches-py"
        train_list = [[f"data_batch_{i}", ""] for i in range(1, 6)]
        test_list = [["test_batch", ""]]

    source = datasets._Cifar(Described, "labels")
    root = tmp_path / "data"
    assert not source.local(root)
    source.fetch(root)
    assert source.local(root) and (root / "cifar-10-python.tar.gz").is_file()
    x_train, y_train, x_test, y_test, _ = source.read(root)
    assert np.array_equal(x_train, written["train_x"]) and y_test.tolist() == written["test_y"]


def test_mislabel_changes_exactly_the_chosen_labels_to_other_classes(digits):
    noisy, chosen = imagedata.mislabel(digits.train, 0.1, 10, seed=4)
    changed = (noisy.labels != digits.train.labels).nonzero().squeeze(1)
    assert torch.equal(changed, chosen) and len(chosen) == round(0.1 * len(digits.train))
    assert torch.equal(noisy.images, digits.train.images) and int(noisy.labels.max()) < 10
    again, same = imagedata.mislabel(digits.train, 0.1, 10, seed=4)
    assert torch.equal(same, chosen) and torch.equal(again.labels, noisy.labels)
    for fraction in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="fraction must be in"):
            imagedata.mislabel(digits.train, fraction, 10)
    with pytest.raises(ValueError, match="at least 2 classes"):
        imagedata.mislabel(digits.train, 0.1, 1)


@pytest.mark.parametrize(
    ("bad", "shown"), [([10], "1 labels outside its classes 0..9: 10"), ([-1, 12, 12], "3 labels .*: -1, 12")]
)
def test_labels_outside_the_classes_are_refused_when_the_data_is_made(digits, bad, shown):
    labels = digits.train.labels.clone()
    labels[: len(bad)] = torch.tensor(bad)
    with pytest.raises(ValueError, match=f"the training split of digits has {shown}"):
        dataclasses.replace(digits, train=imagedata.Split(digits.train.images, labels))


def test_labels_are_checked_when_a_dataset_is_loaded(monkeypatch):
    source = datasets._SOURCES["digits"]
    real_read = source.read

    def with_an_eleventh_class(root):
        x_train, y_train, x_test, y_test, where = real_read(root)
        y_test = y_test.copy()
        y_test[:50] = 10
        return x_train, y_train, x_test, y_test, where

    monkeypatch.setattr(source, "read", with_an_eleventh_class, raising=False)
    with pytest.raises(ValueError, match="the test split of digits has 50 labels outside its classes 0..9: 10"):
        load("digits", n_validation=0, device="cpu")


def test_a_validation_split_is_checked_as_the_test_split_is():
    digits = load("digits", n_test=100, device="cpu")
    eleventh = imagedata.Split(digits.validation.images, torch.full((len(digits.validation),), 10))
    with pytest.raises(ValueError, match="^the validation split of digits has 72 labels outside its classes 0..9"):
        dataclasses.replace(digits, validation=eleventh)
    wide = imagedata.Split(digits.validation.images.repeat(1, 1, 1, 2), digits.validation.labels)
    with pytest.raises(ValueError, match=r"^training images are \(1, 8, 8\) but validation images \(1, 8, 16\)"):
        dataclasses.replace(digits, validation=wide)


def test_labels_must_be_whole_class_numbers(tiny_split):
    with pytest.raises(ValueError, match="labels must be whole class numbers"):
        imagedata.Split(tiny_split.images, tiny_split.labels.float())
