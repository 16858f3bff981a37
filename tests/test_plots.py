"""The shared figures: what they draw, checked on the matplotlib objects."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from unlearnlib import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


SWEEP = pd.DataFrame({"k": [1, 4, 7, 1, 4, 7], "lr": [0.1] * 3 + [0.01] * 3, "ua": [0.1, 0.2, 0.3, 0.0, 0.1, 0.2]})


def test_a_sweep_draws_one_line_per_hue_and_rows_as_horizontal_references():
    references = {"retrain": pd.Series({"ua": 0.25}), "original": pd.Series({"ua": 0.05})}
    fig = plots.sweep_lines(SWEEP, "k", {"ua": "UA"}, hue="lr", references=references, xlabel="k blocks")
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["0.1", "0.01", "retrain", "original"]
    assert list(lines["0.01"].get_ydata()) == [0.0, 0.1, 0.2]
    assert list(lines["retrain"].get_ydata()) == [0.25, 0.25] and lines["retrain"].get_linestyle() == "--"
    assert list(lines["original"].get_ydata()) == [0.05, 0.05] and lines["original"].get_linestyle() == ":"
    assert ax.get_xlabel() == "k blocks" and ax.get_ylabel() == "UA" and ax.get_ylim() == (-0.02, 1.02)


def test_a_sweep_without_hue_is_one_named_line_and_a_measure_beyond_shares_keeps_its_own_axis():
    frame = SWEEP[SWEEP["lr"] == 0.1].assign(ratio=[0.5, 1.5, 3.0])
    fig = plots.sweep_lines(frame, "k", {"ua": "UA", "ratio": "time ratio"}, hue=None, label="EU-k", xscale="log")
    shares, times = fig.axes
    assert [line.get_label() for line in shares.get_lines()] == ["EU-k"]
    assert times.get_ylim()[1] > 3.0 and times.get_xscale() == "log"


def test_a_sweep_with_rows_draws_a_reference_frame_per_row():
    clean = pd.DataFrame({"k": [1, 7, 1, 7], "lr": [0.1, 0.1, 0.01, 0.01], "ua": [0.9, 0.9, 0.8, 0.8]})
    fig = plots.sweep_lines(SWEEP, "k", {"ua": "UA"}, row="lr", hue=None, label="run", references={"clean": clean})
    top, bottom = fig.axes
    assert top.get_title() == "lr = 0.1" and list(top.get_lines()[-1].get_ydata()) == [0.9, 0.9]
    assert list(bottom.get_lines()[-1].get_ydata()) == [0.8, 0.8]


def test_a_measure_with_a_spread_over_the_models_gets_error_bars_of_one_std():
    frame = SWEEP.assign(ua_std=[0.01, 0.02, 0.03, 0.0, 0.01, 0.05])
    fig = plots.sweep_lines(frame, "k", {"ua": "UA"}, hue="lr")
    (ax,) = fig.axes
    bars = [collection.get_segments() for collection in ax.collections]
    assert len(bars) == 2, "one set of bars per line"
    ends = [end for segment in bars[1] for end in (segment[0][1], segment[1][1])]
    assert ends == pytest.approx([0.0, 0.0, 0.09, 0.11, 0.15, 0.25]), "lr = 0.01: ua ± ua_std"


def test_the_pipeline_names_every_stage_and_the_gold_standard():
    fig = plots.pipeline()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for name, _ in plots.PIPELINE:
        assert name in texts
    assert "retrained models (gold standard)" in texts
    arrows = [t for t in fig.axes[0].texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == len(plots.PIPELINE) + 1, "one arrow between stages, two through the gold standard"
    plt.close(fig)
