import pytest
import torch

from unlearnlib.models import BasicBlock, build_model, count_parameters


@pytest.mark.parametrize(
    ("arch", "parameters"),
    [("resnet18", 11_173_962), ("resnet34", 21_282_122), ("resnet9", 6_573_130)],
)
def test_parameter_counts_of_the_standard_cifar10_networks(arch, parameters):
    model = build_model(arch, num_classes=10, in_channels=3, width=64)
    assert count_parameters(model) == parameters


@pytest.mark.parametrize("arch", ["resnet9", "resnet18", "resnet34"])
@pytest.mark.parametrize(("channels", "size"), [(1, 8), (1, 28), (3, 32)])
def test_output_shapes_for_any_channels_and_size(arch, channels, size):
    model = build_model(arch, num_classes=7, in_channels=channels, width=4).eval()
    assert model(torch.randn(2, channels, size, size)).shape == (2, 7)


def test_width_scales_the_stages():
    model = build_model("resnet18", num_classes=10, in_channels=3, width=8)
    assert [model.layer1[0].conv1.out_channels, model.layer4[0].conv1.out_channels] == [8, 64]
    assert model.fc.in_features == 64


def test_identity_and_projection_shortcuts():
    same = BasicBlock(8, 8)
    assert isinstance(same.shortcut, torch.nn.Identity)
    down = BasicBlock(8, 16, stride=2)
    conv = down.shortcut[0]
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert down(torch.randn(1, 8, 6, 6)).shape == (1, 16, 3, 3)


def test_a_block_with_a_zero_residual_branch_is_relu_of_its_input():
    block = BasicBlock(4, 4).eval()
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(3, 4, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))


def test_cifar_stem_keeps_full_resolution():
    model = build_model("resnet18", num_classes=10, in_channels=3, width=4)
    stem = model.conv1
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def test_seeded_initialisation_is_reproducible_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("resnet18", num_classes=10, in_channels=1, width=4, seed=5)
    after = torch.rand(1)
    b = build_model("resnet18", num_classes=10, in_channels=1, width=4, seed=5)
    c = build_model("resnet18", num_classes=10, in_channels=1, width=4, seed=6)
    assert torch.equal(before, after)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(arch="vgg16"), "unknown model 'vgg16'.*resnet18"),
        (dict(width=0), "width must be positive"),
        (dict(num_classes=0), "num_classes"),
    ],
)
def test_bad_model_requests_are_refused(options, message):
    settings = dict(arch="resnet18", num_classes=10, in_channels=3, width=4) | options
    arch = settings.pop("arch")
    with pytest.raises(ValueError, match=message):
        build_model(arch, **settings)
