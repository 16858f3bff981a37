"""Checking a method written out in a notebook against the library's tested version of it.

The algorithm notebooks write each method's core (its loss and its update loop) at teaching size, then
check that it gives the library's result on the same inputs and seed. :func:`small_case` gives those
inputs: a small copy of the data and the request on the CPU, in full precision, where the same
arithmetic gives the same weights whatever device the course runs on (a GPU's mixed precision would
not). :func:`largest_difference` compares the two networks that come out.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from . import validate
from .checkpoints import TrainedModel, network
from .forget import ForgetRequest
from .imagedata import ImageData, Split


def _choose(n: int, count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(n, generator=generator)[:count].sort().values


def small_case(
    data: ImageData, request: ForgetRequest, *, n_train: int = 256, n_held_out: int = 64, seed: int = 0
) -> tuple[ImageData, ForgetRequest]:
    """A small copy of ``data`` and ``request`` on the CPU: ``n_train`` training examples, chosen at random
    with the forget set in the request's proportion (at least one forgotten, one retained), and
    ``n_held_out`` test and validation examples.

    The request keeps its kind, seed and class: a class request still forgets every example of its class
    in the copy.
    """
    if not isinstance(data, ImageData):
        raise TypeError(f"data must be an ImageData, got {type(data).__name__}")
    if not isinstance(request, ForgetRequest):
        raise TypeError(f"request must be a ForgetRequest, got {type(request).__name__}")
    request.check_fits(data)
    n_train = validate.integer("n_train", n_train, minimum=2)
    n_held_out = validate.integer("n_held_out", n_held_out, minimum=1)
    generator = torch.Generator().manual_seed(validate.seed("seed", seed))
    n_train = min(n_train, len(data.train))
    n_forget = min(max(1, round(n_train * len(request) / request.n_train)), len(request), n_train - 1)
    forget = request.forget[_choose(len(request), n_forget, generator)]
    retain = request.retain[_choose(len(request.retain), n_train - n_forget, generator)]
    chosen, order = torch.cat([forget, retain]).sort()
    is_forgotten = order < n_forget

    def few(split: Split | None) -> Split | None:
        if split is None:
            return None
        cpu = split.to("cpu")
        return cpu.subset(_choose(len(cpu), min(n_held_out, len(cpu)), generator))

    small = ImageData(
        info=data.info,
        train=data.train.to("cpu").subset(chosen),
        test=few(data.test),
        train_ids=data.train_ids[chosen],
        source=f"{n_train} examples of {data.source}",
        validation=few(data.validation),
    )
    small_request = ForgetRequest(
        request.kind, is_forgotten.nonzero().squeeze(1), n_train, seed=request.seed, target_class=request.target_class
    )
    return small, small_request


def on_cpu(model: nn.Module | TrainedModel) -> nn.Module:
    """A copy of ``model``'s network on the CPU, in full precision and the default memory format, in eval mode."""
    clone = copy.deepcopy(network(model))
    return clone.to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format).eval()


@torch.no_grad()
def largest_difference(a: nn.Module, b: nn.Module) -> float:
    """The largest absolute difference between two networks' weights and floating-point buffers (batch-norm
    statistics), matched by name; an error when they do not hold the same tensors."""
    first, second = _state(a), _state(b)
    if first.keys() != second.keys():
        raise ValueError(f"the networks differ in their tensors: {sorted(first.keys() ^ second.keys())[:4]}")
    largest = 0.0
    for name, tensor in first.items():
        other = second[name]
        if tensor.shape != other.shape:
            raise ValueError(f"{name}: shape {tuple(tensor.shape)} against {tuple(other.shape)}")
        if tensor.numel():
            largest = max(largest, (tensor.float().cpu() - other.float().cpu()).abs().max().item())
    return largest


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t for name, t in network(model).state_dict().items() if t.is_floating_point()}
