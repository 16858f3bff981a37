"""Training throughput: unlearnlib's loop against a conventional torchvision pipeline.

    python -m unlearnlib.bench [--devices cpu cuda] [--arch resnet18] [--width 64] ... [--results RESULTS.md]

Both loops train the same network, with the same optimizer and batch size, on
the same CIFAR-shaped images (random pixels and labels: throughput does not
depend on content), for a warm-up epoch and then the timed ones.

- unlearnlib: :func:`unlearnlib.train.fit`, data held on the device as uint8,
  crop and flip applied to whole batches there; on CUDA with mixed precision
  and channels_last.
- conventional: a ``Dataset`` of PIL images, ``transforms`` (RandomCrop,
  RandomHorizontalFlip, ToTensor, Normalize) in ``DataLoader`` workers,
  float32.  On CUDA it is also run with mixed precision and channels_last, so
  that the data pipeline's share of the difference shows on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from . import cli, config
from .datasets import INFO
from .imagedata import ImageData, Split
from .models import ARCHITECTURES, build_model
from .train import TrainConfig, autocast_dtype, fit


def synthetic_cifar(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random 32x32 RGB images ``[N, 32, 32, 3]`` (uint8) and labels in 0..9."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def _check_timing(n_images: int, config: TrainConfig) -> None:
    if config.epochs < 2:
        raise ValueError(
            f"timing needs a warm-up epoch and a timed one: epochs must be at least 2, got {config.epochs}"
        )
    if n_images < config.batch_size:
        raise ValueError(f"{n_images} images make no full batch of {config.batch_size}: give more images")


def unlearnlib_throughput(images: np.ndarray, labels: np.ndarray, config: TrainConfig, device: torch.device) -> float:
    """Training images per second of :func:`unlearnlib.train.fit`, its first epoch excluded."""
    _check_timing(len(labels), config)

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y)).to(device)

    data = ImageData(
        info=INFO["cifar10"](None),
        train=to_split(images, labels),
        test=to_split(images[: config.batch_size], labels[: config.batch_size]),
        train_ids=torch.arange(len(labels)),
        source="synthetic",
    )
    model = build_model(config.arch, num_classes=10, in_channels=3, width=config.width, seed=0)
    history = fit(model, data, config, progress=False)
    per_epoch = (len(labels) // config.batch_size) * config.batch_size
    return per_epoch * (config.epochs - 1) / sum(history.seconds[1:])


class _PILImages(Dataset):
    """What a torchvision dataset does: one PIL image at a time, through ``transform``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def conventional_throughput(
    images: np.ndarray,
    labels: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    *,
    workers: int,
    fast_step: bool = False,
) -> float:
    """Training images per second of a torchvision ``Dataset`` + ``transforms`` + ``DataLoader`` loop.

    ``fast_step`` adds mixed precision and channels_last to the step (CUDA only).
    """
    _check_timing(len(labels), config)
    mean = (images / 255).mean(axis=(0, 1, 2))
    std = (images / 255).std(axis=(0, 1, 2))
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean.tolist(), std.tolist()),
        ]
    )
    loader = DataLoader(
        _PILImages(images, labels, transform),
        batch_size=config.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    model = build_model(config.arch, num_classes=10, in_channels=3, width=config.width, seed=0).to(device)
    dtype = autocast_dtype(device) if fast_step else None
    if fast_step:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    model.train()
    seconds = []
    for _ in range(config.epochs):
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if fast_step:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    per_epoch = (len(labels) // config.batch_size) * config.batch_size
    return per_epoch * (config.epochs - 1) / sum(seconds[1:])


def run(device: torch.device, args: argparse.Namespace) -> list[dict]:
    """Both loops on ``device``; one row per loop."""
    images, labels = synthetic_cifar(args.images)
    config = TrainConfig(
        dataset="cifar10",
        arch=args.arch,
        width=args.width,
        epochs=args.epochs + 1,
        batch_size=args.batch_size,
        schedule="constant",
        lr=0.05,
    )
    threads = torch.get_num_threads()
    cpu = f"CPU, {threads} thread{'s' if threads != 1 else ''}"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    rows = [dict(device=name, loop="unlearnlib", images_per_s=unlearnlib_throughput(images, labels, config, device))]
    conventional = conventional_throughput(images, labels, config, device, workers=args.workers)
    rows.append(dict(device=name, loop=f"conventional, {args.workers} workers", images_per_s=conventional))
    if device.type == "cuda":
        fast = conventional_throughput(images, labels, config, device, workers=args.workers, fast_step=True)
        rows.append(dict(device=name, loop="conventional + mixed precision, channels_last", images_per_s=fast))
    for row in rows:
        row["vs conventional"] = row["images_per_s"] / conventional
    return rows


def results_section(rows: list[dict], settings: str, command: str, date: str, machine: str) -> str:
    """RESULTS.md's section on training throughput: the rows of one benchmark run, with how it was run."""
    lines = [
        "## Training throughput",
        "",
        f"{date[:10]}, {machine}; `{command}`: {settings}.",
        "",
        "| device | loop | images/s | vs conventional |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {row['device']} | {row['loop']} | {row['images_per_s']:.0f} | {row['vs conventional']:.2f}x |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m unlearnlib.bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--devices",
        nargs="+",
        default=None,
        metavar="DEVICE",
        help=f"devices to time, spaces or commas between them (on this machine: {config.device_choices()}; "
        "default: cpu, and cuda when present)",
    )
    parser.add_argument("--arch", default="resnet18", choices=list(ARCHITECTURES), help="default: %(default)s")
    parser.add_argument("--width", type=cli.whole_number(1), default=64, help="default: %(default)s")
    parser.add_argument("--batch-size", type=cli.whole_number(1), default=None, help="default: 512 on CUDA, 128 on CPU")
    parser.add_argument(
        "--images",
        type=cli.whole_number(1),
        default=None,
        help="training images, at least one batch (default: 25600 on CUDA, 512 on CPU)",
    )
    parser.add_argument(
        "--epochs", type=cli.whole_number(1), default=2, help="timed epochs, after one warm-up epoch (default: 2)"
    )
    parser.add_argument(
        "--workers", type=cli.whole_number(0), default=min(4, os.cpu_count() or 1), help="DataLoader workers"
    )
    parser.add_argument("--results", type=Path, help="also write the figures into this RESULTS.md")
    args = parser.parse_args(argv)
    names = cli.split_names(args.devices) if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if not names:
        parser.error("argument --devices: give at least one device")
    plans = []
    for name in names:
        try:
            device = config.choose_device(name)
        except ValueError as err:
            parser.error(f"argument --devices: {err}")
        cuda = device.type == "cuda"
        device_args = argparse.Namespace(**vars(args))
        device_args.batch_size = args.batch_size or (512 if cuda else 128)
        device_args.images = args.images or (25_600 if cuda else 512)
        if device_args.images < device_args.batch_size:
            parser.error(
                f"argument --images: {device_args.images} images make no full batch of {device_args.batch_size} "
                f"on {name}; give at least {device_args.batch_size} (or a smaller --batch-size)"
            )
        plans.append((name, device, device_args))
    rows = []
    for name, device, device_args in plans:
        print(
            f"{name}: {args.arch} width {args.width}, {device_args.images} images 3x32x32, "
            f"batch {device_args.batch_size}, 1 warm-up + {args.epochs} timed epochs ...",
            flush=True,
        )
        rows += run(device, device_args)
    print()
    print(f"{'device':28s} {'loop':48s} {'images/s':>10s} {'vs conventional':>16s}")
    for row in rows:
        print(f"{row['device']:28s} {row['loop']:48s} {row['images_per_s']:10.0f} {row['vs conventional']:15.2f}x")
    if args.results:
        from .course import describe_machine, machine
        from .readme import write_section

        settings = "; ".join(
            f"{name}: {args.arch} width {a.width}, {a.images} images 3x32x32, batch {a.batch_size}, "
            f"1 warm-up + {a.epochs} timed epochs, {a.workers} DataLoader workers"
            for name, _, a in plans
        )
        command = " ".join(["python -m unlearnlib.bench", shlex.join(sys.argv[1:] if argv is None else argv)])
        date = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        section = results_section(rows, settings, command, date, describe_machine(machine()))
        text = args.results.read_text() if args.results.is_file() else ""
        args.results.write_text(write_section(text, "bench", section))
        print(f"{args.results}: the throughput section rewritten")


if __name__ == "__main__":
    main()
