import math
import re
import warnings

import pytest
import torch
import torch.nn.functional as F

from unlearnlib.batching import (
    Augmentation,
    augment,
    batches,
    normalise,
    random_crop,
    random_flip,
    random_rotate,
)
from unlearnlib.imagedata import Split


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_crop_is_a_shifted_window_of_the_padded_image(tiny_split):
    images, padding = tiny_split.images, 2
    cropped = random_crop(images, padding, _generator())
    padded = F.pad(images, (padding,) * 4)
    h, w = images.shape[2:]
    offsets = set()
    for original, out in zip(padded, cropped):
        matches = [
            (dy, dx)
            for dy in range(2 * padding + 1)
            for dx in range(2 * padding + 1)
            if torch.equal(original[:, dy : dy + h, dx : dx + w], out)
        ]
        assert matches, "every crop is a window of the padded image"
        offsets.add(matches[0])
    assert len(offsets) > 1, "each image draws its own offset"


def test_crop_without_padding_is_the_identity(tiny_split):
    assert torch.equal(random_crop(tiny_split.images, 0, _generator()), tiny_split.images)


def test_flip_mirrors_about_half_of_the_images():
    images = torch.randint(0, 256, (400, 1, 3, 4), dtype=torch.uint8, generator=_generator(1))
    flipped = random_flip(images, _generator())
    mirrored = (flipped == images.flip(-1)).flatten(1).all(1)
    kept = (flipped == images).flatten(1).all(1)
    assert (mirrored | kept).all()
    assert 150 < mirrored.sum() < 250


def test_rotation_by_zero_degrees_is_the_identity_and_rotation_keeps_the_centre():
    images = torch.zeros(6, 1, 9, 9, dtype=torch.uint8)
    images[:, :, 4, 4] = 200
    assert torch.equal(random_rotate(images, 0, _generator()), images)
    rotated = random_rotate(images, 10, _generator())
    assert rotated.dtype == torch.uint8 and rotated.shape == images.shape
    assert (rotated[:, 0, 4, 4] > 100).all(), "the centre pixel stays where it is"
    uniform = torch.full((4, 3, 8, 8), 90, dtype=torch.uint8)
    assert (random_rotate(uniform, 10, _generator())[:, :, 3:5, 3:5] == 90).all()


def test_rotation_turns_each_image_by_its_own_drawn_angle():
    """Known answer: a bright pixel 6 px right of the centre lands at 6 px from the centre, at the angle drawn for
    its image (u ~ U[0, 1) from the same seed, angle (2u - 1) * degrees; the image's y axis points down, so a
    positive angle turns it clockwise on screen)."""
    n, size, radius, degrees = 12, 21, 6, 45
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    images[:, 0, size // 2, size // 2 + radius] = 255
    rotated = random_rotate(images, degrees, _generator(3)).float()[:, 0]
    angles = (2 * torch.rand(n, generator=_generator(3)) - 1) * math.radians(degrees)
    ys, xs = torch.meshgrid(torch.arange(size) - size // 2, torch.arange(size) - size // 2, indexing="ij")
    weight = rotated.sum((1, 2))
    centroid_x = (rotated * xs).sum((1, 2)) / weight
    centroid_y = (rotated * ys).sum((1, 2)) / weight
    # Within 0.15 px (measured: 0.08); a grid off by one pixel's scale (align_corners) is 0.29 px off at radius 6.
    assert torch.allclose(centroid_x, radius * angles.cos(), atol=0.15), (centroid_x, radius * angles.cos())
    assert torch.allclose(centroid_y, -radius * angles.sin(), atol=0.15), (centroid_y, -radius * angles.sin())
    assert angles.abs().max() > math.radians(20), "the draw covers large angles, so doing nothing cannot pass"


def test_augment_is_rotate_then_crop_then_flip_with_one_generator(tiny_split):
    """Each configured step takes effect, in order; leaving one out changes the result."""
    images = tiny_split.images
    every = Augmentation(crop_padding=2, flip=True, rotate_degrees=30)
    generator = _generator(5)
    expected = random_flip(random_crop(random_rotate(images, 30, generator), 2, generator), generator)
    assert torch.equal(augment(images, every, _generator(5)), expected)
    for step in ({"crop_padding": 0}, {"flip": False}, {"rotate_degrees": 0.0}):
        fewer = Augmentation(**{**vars(every), **step})
        assert not torch.equal(augment(images, fewer, _generator(5)), expected), f"{step} changes nothing"


def test_batches_augment_when_asked_and_only_then(tiny_split):
    stats = _stats(tiny_split)
    plain = torch.cat([x for x, _ in batches(tiny_split, 4, **stats)])
    assert torch.equal(plain, tiny_split.images.float())
    flips = torch.cat(
        [x for x, _ in batches(tiny_split, 4, augmentation=Augmentation(flip=True), generator=_generator(2), **stats)]
    )
    mirrored = (flips == tiny_split.images.flip(-1).float()).flatten(1).all(1)
    kept = (flips == tiny_split.images.float()).flatten(1).all(1)
    assert (mirrored | kept).all() and (mirrored & ~kept).any() and (kept & ~mirrored).any()


def test_augment_applies_the_configured_steps_on_the_images_device(tiny_split):
    out = augment(tiny_split.images, Augmentation(crop_padding=1, flip=True, rotate_degrees=5), _generator())
    assert out.shape == tiny_split.images.shape and out.dtype == torch.uint8
    assert out.device == tiny_split.images.device
    assert torch.equal(augment(tiny_split.images, Augmentation(), _generator()), tiny_split.images)


def test_augmentation_rejects_bad_settings():
    with pytest.raises(ValueError, match="crop_padding"):
        Augmentation(crop_padding=-1)
    with pytest.raises(ValueError, match="rotate_degrees"):
        Augmentation(rotate_degrees=270)


def test_normalise_gives_zero_mean_unit_std_per_channel(digits):
    x = normalise(digits.train.images, digits.mean, digits.std)
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean((0, 2, 3)), torch.zeros(1), atol=1e-5)
    assert torch.allclose(x.std((0, 2, 3)), torch.ones(1), atol=1e-5)


def test_normalised_batches_have_row_major_strides_whatever_the_storage():
    """A one-channel view of channels-last storage has odd strides; PyTorch's one-thread CPU backward corrupts
    memory on them, so normalise always returns row-major NCHW strides."""
    stored = torch.randint(0, 256, (6, 8, 8, 1), dtype=torch.uint8).permute(0, 3, 1, 2)
    assert stored.stride() != (64, 64, 8, 1)
    x = normalise(stored, torch.zeros(1), torch.ones(1))
    assert x.stride() == (64, 64, 8, 1)
    assert torch.allclose(x, stored.float() / 255)


def _stats(split):
    return dict(mean=torch.zeros(split.images.shape[1]), std=torch.ones(split.images.shape[1]) / 255)


def test_batches_cover_every_example_once(tiny_split):
    seen = []
    for x, y in batches(tiny_split, 5, shuffle=True, generator=_generator(), **_stats(tiny_split)):
        assert x.dtype == torch.float32 and len(x) <= 5
        for image, label in zip(x, y):
            index = next(i for i in range(len(tiny_split)) if torch.equal(tiny_split.images[i].float(), image))
            assert tiny_split.labels[index] == label
            seen.append(index)
    assert sorted(seen) == list(range(len(tiny_split))) and seen != sorted(seen)


def test_drop_last_drops_only_a_partial_batch(tiny_split):
    sizes = [len(y) for _, y in batches(tiny_split, 5, drop_last=True, **_stats(tiny_split))]
    assert sizes == [5, 5]
    sizes = [len(y) for _, y in batches(tiny_split, 50, drop_last=True, **_stats(tiny_split))]
    assert sizes == [12], "with no full batch, the partial one is kept"


def test_no_batch_of_one_example_is_made(tiny_split):
    """Batch norm cannot train on one example (on a 1x1 feature map it has one value per channel)."""
    sizes = [len(y) for _, y in batches(tiny_split, 11, shuffle=True, generator=_generator(), **_stats(tiny_split))]
    assert sizes == [12], "12 examples in batches of 11: the one left over joins the first batch"
    assert [len(y) for _, y in batches(tiny_split, 4, **_stats(tiny_split))] == [4, 4, 4]
    single = tiny_split.subset(torch.tensor([3]))
    assert [len(y) for _, y in batches(single, 4, **_stats(tiny_split))] == [1], "a split of one is one batch"
    assert [len(y) for _, y in batches(tiny_split, 1, **_stats(tiny_split))] == [1] * 12, "batch_size=1 asks for ones"


def test_shuffled_augmented_batches_are_fixed_by_the_generator_seed(tiny_split):
    def run(seed):
        options = dict(shuffle=True, augmentation=Augmentation(1, True), generator=_generator(seed))
        return torch.cat([x for x, _ in batches(tiny_split, 4, **options, **_stats(tiny_split))])

    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))


def test_channels_last_batches(tiny_split):
    x, _ = next(batches(tiny_split, 4, channels_last=True, **_stats(tiny_split)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_batch_size_must_be_positive(tiny_split):
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(tiny_split, 0, **_stats(tiny_split)))


def test_rotation_by_one_degree_already_moves_sharp_edges():
    images = torch.zeros(2, 1, 9, 9, dtype=torch.uint8)
    images[:, :, 2:7, 2:7] = 200
    assert not torch.equal(random_rotate(images, 1.0, _generator()), images)


def test_a_crop_with_padding_1_draws_every_offset():
    images = torch.zeros(300, 1, 3, 3, dtype=torch.uint8)
    images[:, :, 1, 1] = 255  # the centre pixel shows where the window went
    cropped = random_crop(images, 1, _generator())
    padded = F.pad(images, (1,) * 4)
    offsets = {
        (dy, dx)
        for original, out in zip(padded, cropped)
        for dy in range(3)
        for dx in range(3)
        if torch.equal(original[:, dy : dy + 3, dx : dx + 3], out)
    }
    assert offsets == {(dy, dx) for dy in range(3) for dx in range(3)}


def test_every_step_keeps_the_batch_on_its_device():
    """On PyTorch's meta device (no data, no GPU needed) a tensor made on the CPU by mistake cannot be mixed in."""
    images = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8).to("meta")
    assert random_crop(images, 2).device.type == "meta"
    assert random_flip(images).device.type == "meta"
    assert random_rotate(images, 10).device.type == "meta"
    split = Split(images, torch.zeros(5, dtype=torch.long, device="meta"))
    every = Augmentation(crop_padding=1, flip=True, rotate_degrees=5)
    stats = dict(mean=torch.zeros(3), std=torch.ones(3))
    for x, y in batches(split, 2, shuffle=True, augmentation=every, **stats):
        assert x.device.type == y.device.type == "meta"


def test_rotation_warns_of_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        random_rotate(torch.zeros(2, 1, 5, 5, dtype=torch.uint8), 10, _generator())


def test_batches_are_row_major_unless_channels_last_is_asked_for(tiny_split):
    x, _ = next(batches(tiny_split, 4, **_stats(tiny_split)))
    assert x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)


def test_a_last_batch_of_one_joins_the_batch_before_at_every_batch_size():
    split = Split(torch.zeros(9, 1, 2, 2, dtype=torch.uint8), torch.zeros(9, dtype=torch.long))
    stats = dict(mean=torch.zeros(1), std=torch.ones(1))
    assert [len(y) for _, y in batches(split, 2, **stats)] == [2, 2, 2, 3]
    assert [len(y) for _, y in batches(split, 4, **stats)] == [4, 5]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Augmentation(crop_padding=-1), "crop_padding must be >= 0, got -1"),
        (lambda: Augmentation(flip=1), "flip must be True or False, got 1"),
        (lambda: Augmentation(rotate_degrees=180.5), "rotate_degrees must be in [0, 180], got 180.5"),
        (
            lambda: next(
                batches(
                    Split(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)),
                    0,
                    mean=0,
                    std=1,
                )
            ),
            "batch_size must be positive (at least 1), got 0",
        ),
    ],
)
def test_each_refusal_names_its_argument(call, message):
    with pytest.raises((ValueError, TypeError), match=f"^{re.escape(message)}$"):
        call()
