import re

import pytest
import torch

from unlearnlib import bench


def test_the_benchmark_times_both_loops_on_the_cpu(capsys):
    bench.main(
        ["--devices", "cpu", "--width", "4", "--images", "64", "--batch-size", "16", "--epochs", "1", "--workers", "0"]
    )
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("CPU")]
    assert len(rows) == 2 and "unlearnlib" in rows[0] and "conventional" in rows[1]
    speeds = [float(row.split()[-2]) for row in rows]
    assert all(speed > 0 for speed in speeds)
    assert rows[1].endswith("1.00x")


def test_the_figures_go_into_results_md_with_how_they_were_measured(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Measured results\n\nfirst\n")
    argv = ["--devices", "cpu", "--width", "4", "--images", "32", "--batch-size", "16", "--epochs", "1"]
    for _ in range(2):
        bench.main([*argv, "--workers", "0", "--results", str(results)])
    text = results.read_text()
    assert text.startswith("# Measured results\n\nfirst\n") and text.count("<!-- bench: begin -->") == 1
    section = text[text.index("## Training throughput") : text.index("<!-- bench: end -->")]
    assert "`python -m unlearnlib.bench --devices cpu --width 4 --images 32" in section
    settings = "cpu: resnet18 width 4, 32 images 3x32x32, batch 16, 1 warm-up + 1 timed epochs, 0 DataLoader workers"
    assert settings in section and "-core CPU, " in section
    rows = [line for line in section.splitlines() if line.startswith("| CPU")]
    assert len(rows) == 2 and rows[1].endswith("| 1.00x |") and "| unlearnlib |" in rows[0]


def test_synthetic_images_are_cifar_shaped():
    images, labels = bench.synthetic_cifar(5)
    assert images.shape == (5, 32, 32, 3) and images.dtype.name == "uint8"
    assert labels.min() >= 0 and labels.max() < 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["--images", "10"], "argument --images: 10 images make no full batch of 128 on cpu"),
        (["--images", "10.5"], "argument --images: must be a whole number, got '10.5'"),
        (["--width", "0"], "argument --width: must be at least 1"),
        (["--arch", "vgg"], r"argument --arch: invalid choice: 'vgg' \(choose from .*resnet9.*resnet34"),
        (["--devices", "cpu,cuda"], "argument --devices: device 'cuda' asked for, but CUDA is not available"),
        (["--devices", "tpu"], "argument --devices: device 'tpu' is not a device; choose one of cpu"),
    ],
)
def test_bad_arguments_are_one_line_errors_before_any_work(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench, "run", lambda *args: pytest.fail("the benchmark ran"))
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--devices", "cpu", *argv])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert re.search(message, last), last


def test_devices_may_be_given_with_commas_and_spaces(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bench, "run", lambda device, args: seen.append(device) or [])
    bench.main(["--devices", "cpu, cpu", "--images", "128"])
    assert seen == [torch.device("cpu")], "stripped, and a device named twice is timed once"


def test_help_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "resnet9" in out and "resnet34" in out and "on this machine: cpu" in out
