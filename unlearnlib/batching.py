"""Batches sliced from device-resident uint8 tensors, augmented on the device, whole batches at once.

A conventional pipeline decodes and transforms one PIL image at a time in
worker processes; here every step is one tensor operation over a whole batch,
on the GPU when there is one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from . import validate


class LabelledImages(Protocol):
    """What :func:`batches` slices: uint8 images ``[N, C, H, W]`` and their labels on one device (a
    :class:`~unlearnlib.imagedata.Split`)."""

    images: torch.Tensor
    labels: torch.Tensor

    @property
    def device(self) -> torch.device: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Augmentation:
    """Random training augmentation; each field off by default."""

    crop_padding: int = 0
    """Pad by this many zero pixels on each side, then crop back to size at a random offset."""
    flip: bool = False
    """Mirror left-right with probability 1/2."""
    rotate_degrees: float = 0.0
    """Rotate by an angle drawn uniformly from [-rotate_degrees, rotate_degrees]."""

    def __post_init__(self) -> None:
        validate.integer("crop_padding", self.crop_padding, minimum=0)
        if not isinstance(self.flip, bool):
            raise TypeError(f"flip must be True or False, got {self.flip!r}")
        validate.interval("rotate_degrees", self.rotate_degrees, 0.0, 180.0, low_open=False)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image zero-padded by ``padding`` and cropped back to its size at its own random offset."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=device)
    rows = (dy + torch.arange(h, device=device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=device))[:, None, None, :]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    mirror = torch.rand(len(images), generator=generator, device=images.device) < 0.5
    return torch.where(mirror[:, None, None, None], images.flip(-1), images)


def random_rotate(images: torch.Tensor, degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image rotated about its centre by its own angle in [-degrees, degrees] (bilinear, zero fill)."""
    if degrees == 0:
        return images
    n = len(images)
    u = torch.rand(n, generator=generator, device=images.device)
    angle = (2 * u - 1) * math.radians(degrees)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    rotated = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return rotated.round_().to(images.dtype)  # bilinear weights are convex: the values stay in [0, 255]


def augment(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator | None = None) -> torch.Tensor:
    """A randomly augmented copy of a batch of uint8 images ``[N, C, H, W]``: rotate, crop, then flip."""
    images = random_rotate(images, augmentation.rotate_degrees, generator)
    images = random_crop(images, augmentation.crop_padding, generator)
    if augmentation.flip:
        images = random_flip(images, generator)
    return images


def normalise(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32: divided by 255, then standardised per channel with ``mean`` and ``std``.

    The result has the standard (row-major NCHW) strides whatever the layout of ``images``: with one
    channel, a view of channels-last storage counts as contiguous but keeps odd strides, and PyTorch's
    CPU convolution backward corrupts memory on such a batch when it runs on one thread.
    """
    scale = 255 * std.to(images.device)[:, None, None]
    shift = 255 * mean.to(images.device)[:, None, None]
    return images.to(torch.float32, memory_format=torch.contiguous_format).sub_(shift).div_(scale)


def batches(
    split: LabelledImages,
    batch_size: int,
    *,
    mean: torch.Tensor,
    std: torch.Tensor,
    shuffle: bool = False,
    augmentation: Augmentation | None = None,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    channels_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Normalised float batches ``(x, y)`` of ``split``, sliced and augmented on its device.

    ``shuffle`` draws a new order from ``generator`` (which must live on the
    split's device); ``drop_last`` drops a final partial batch when there is at
    least one full one; ``channels_last`` returns ``x`` in that memory format.
    With ``batch_size > 1``, a final batch of a single example is never made
    (batch norm cannot train on it): it joins the batch before, which then holds
    ``batch_size + 1``.
    """
    batch_size = validate.integer("batch_size", batch_size, minimum=1)
    n = len(split)
    order = torch.randperm(n, generator=generator, device=split.device) if shuffle else None
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    starts = list(range(0, stop, batch_size))
    if batch_size > 1 and len(starts) > 1 and stop - starts[-1] == 1:
        starts.pop()  # a last batch of one would break batch norm in training: it joins the one before
    for start, end in zip(starts, [*starts[1:], stop]):
        if order is None:
            images, labels = split.images[start:end], split.labels[start:end]
        else:
            index = order[start:end]
            images, labels = split.images[index], split.labels[index]
        if augmentation is not None:
            images = augment(images, augmentation, generator)
        x = normalise(images, mean, std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, labels
