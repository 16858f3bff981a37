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


def test_synthetic_images_are_cifar_shaped():
    images, labels = bench.synthetic_cifar(5)
    assert images.shape == (5, 32, 32, 3) and images.dtype.name == "uint8"
    assert labels.min() >= 0 and labels.max() < 10
