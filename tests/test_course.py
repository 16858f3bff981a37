import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from unlearnlib import config, course, profiles, readme


def _notebook(path, *sources):
    notebook = new_notebook(cells=[new_markdown_cell(f"# {path.stem}")] + [new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def test_record_does_nothing_outside_a_course_run(tmp_path):
    course.record("01_x", value=1)
    assert not list(tmp_path.rglob("*.json"))


def test_record_merges_into_the_results_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    monkeypatch.setenv(course.RESULTS_ENV, str(path))
    course.record("01_x", a=1)
    course.record("01_x", b=0.5)
    course.record("02_y", c="text")
    assert json.loads(path.read_text()) == {"01_x": {"a": 1, "b": 0.5}, "02_y": {"c": "text"}}


def test_the_course_runs_every_notebook_even_after_a_failure_and_reports_it(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(
        notebooks / "01_first.ipynb",
        "import os\nfrom unlearnlib.course import record",
        "record('01_first', profile=os.environ['UNLEARN_PROFILE'], answer=42, ratio=0.125)",
    )
    _notebook(notebooks / "02_claim.ipynb", "x = 1", "assert x == 2, 'x is two, as the text says'", "print('never')")
    _notebook(notebooks / "03_later.ipynb", "print('03 ran')", "1 / 0")
    _notebook(notebooks / "helper.ipynb", "raise RuntimeError('not a course notebook')")
    out = tmp_path / "build"
    status = course.main(
        ["--profile", "smoke", "--dataset", "digits", "--notebooks", str(notebooks), "--out", str(out)]
    )
    assert status == 1
    printed = capsys.readouterr().out
    assert "dataset  digits" in printed
    table = printed[printed.index("| notebook | status |") :]
    assert "| 01_first | passed |" in table
    assert "| 02_claim | failed |" in table and "| x is two, as the text says | 3 (In [2]) |" in table
    assert "| 03_later | failed |" in table and "ZeroDivisionError: division by zero | 3 (In [2]) |" in table
    assert "1 of 3 notebooks passed" in printed and "helper" not in printed

    results = json.loads((out / "results.json").read_text())
    assert (results["profile"], results["dataset"]) == ("smoke", "digits")
    assert results["machine"]["cpu_cores"] >= 1 and "gpu" in results["machine"] and results["date"]
    assert list(results["notebooks"]) == ["01_first", "02_claim", "03_later"]
    first, claim = results["notebooks"]["01_first"], results["notebooks"]["02_claim"]
    assert first["status"] == "passed" and first["seconds"] > 0
    assert first["values"] == {"profile": "smoke", "answer": 42, "ratio": 0.125}
    assert (claim["status"], claim["claim"], claim["cell"], claim["execution_count"]) == (
        "failed",
        "x is two, as the text says",
        3,
        2,
    )
    partial = nbformat.read(out / "notebooks" / "02_claim.ipynb", as_version=4)
    assert partial.cells[2].outputs[0].output_type == "error" and partial.cells[3].execution_count is None
    later = nbformat.read(out / "notebooks" / "03_later.ipynb", as_version=4)
    assert later.cells[1].outputs[0].text == "03 ran\n"
    summary = (out / "results.md").read_text()
    assert "1 of 3 notebooks passed" in summary and "| answer | 42 |" in summary and "| ratio | 0.125 |" in summary


def test_notebooks_may_run_at_once_and_are_reported_in_teaching_order(tmp_path, capsys):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for k in range(1, 4):
        _notebook(
            notebooks / f"0{k}_n.ipynb",
            "from unlearnlib.course import record",
            f"record('0{k}_n', k={k})",
            f"{k} / ({k} - 2)",
        )
    out = tmp_path / "build"
    arguments = ["--profile", "smoke", "--dataset", "digits", "--notebooks", str(notebooks), "--out", str(out)]
    assert course.main([*arguments, "--jobs", "2"]) == 1
    results = json.loads((out / "results.json").read_text())
    assert results["jobs"] == 2 and list(results["notebooks"]) == ["01_n", "02_n", "03_n"]
    assert [e["values"] for e in results["notebooks"].values()] == [{"k": 1}, {"k": 2}, {"k": 3}]
    assert [e["status"] for e in results["notebooks"].values()] == ["passed", "failed", "passed"]
    assert not list(out.glob("recorded*.json"))
    (tmp_path / "README.md").write_text(README)
    with pytest.raises(ValueError, match="ran 2 notebooks at once"):
        readme.update_readme(tmp_path / "README.md", out / "results.json")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--notebooks", "/nonexistent"], "--notebooks /nonexistent is not a folder"),
        (["--notebooks", "{empty}"], "holds no NN_*.ipynb notebook"),
        (["--profile", "laptop"], "invalid choice: 'laptop' (choose from"),
        (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["--only", "03,99"], "--only: '99' names no notebook; choose among 01, 03"),
        (["--timeout", "0"], "--timeout: must be positive, got 0"),
        (["--jobs", "0"], "--jobs: must be at least 1, got 0"),
        (["--out", "{file}"], "is a file, not a folder"),
    ],
)
def test_user_errors_are_one_line_before_anything_runs(tmp_path, capsys, arguments, message):
    notebooks, empty = tmp_path / "notebooks", tmp_path / "empty"
    notebooks.mkdir(), empty.mkdir()
    _notebook(notebooks / "01_a.ipynb", "raise SystemExit('must not run')")
    _notebook(notebooks / "03_b.ipynb", "raise SystemExit('must not run')")
    (tmp_path / "file").write_text("")
    arguments = [a.format(empty=empty, file=tmp_path / "file") for a in arguments]
    with pytest.raises(SystemExit) as exited:
        course.main(["--notebooks", str(notebooks), "--out", str(tmp_path / "out"), "--dataset", "digits", *arguments])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m unlearnlib.course: error:") and message in error
    assert "Traceback" not in error and not (tmp_path / "out" / "results.json").exists()


def test_the_readme_command_says_when_there_is_no_run_to_write(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        readme.main([str(tmp_path / "results.json"), "--readme-file", str(tmp_path / "README.md")])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        error.startswith("python -m unlearnlib.readme: error:")
        and "results.json does not exist: run `make course`" in error
    )


def test_a_bad_profile_from_the_environment_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(config.PROFILE_ENV, "laptop")
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "01_a.ipynb", "pass")
    with pytest.raises(SystemExit):
        course.main(["--notebooks", str(tmp_path / "nb"), "--out", str(tmp_path / "out")])
    assert "error: unknown profile 'laptop'; choose one of cpu, gpu, smoke" in capsys.readouterr().err


def test_help_lists_the_profiles(capsys):
    with pytest.raises(SystemExit):
        course.main(["--help"])
    shown = capsys.readouterr().out
    for profile in profiles.PROFILES.values():
        assert f"{profile.name:8s} {profile.meant_for}" in shown
    assert "--only" in shown


def test_only_selects_notebooks_by_number_or_name(tmp_path):
    paths = [tmp_path / f"{n}.ipynb" for n in ("01_a", "03_b", "05_c", "10_d")]
    assert course.select(paths, None) == paths
    assert course.select(paths, " 5, 03 ,") == [paths[1], paths[2]]
    assert course.select(paths, "10_d,1") == [paths[0], paths[3]]
    with pytest.raises(ValueError, match="'04' names no notebook; choose among 01, 03, 05, 10"):
        course.select(paths, "04")


README = """# Course

Hand-written text | with a pipe.

<!-- run-times: begin (generated) -->
| # | notebook | what you learn | smoke | cpu |
|---|---|---|---|---|
| 01 | [Data](notebooks/01_data.ipynb) | classes \\| counts | 12 s | 14 min (by hand) |
| 02 | [Training](notebooks/02_train.ipynb) | ResNets | 15 s | not measured |

Run times per profile.

- **smoke**: measured by hand.
- **cpu**: measured by hand.
<!-- run-times: end -->

## Profiles
"""


def _results(profile, **seconds):
    notebooks = {name: {"status": "passed", "seconds": s, "claim": None, "cell": None} for name, s in seconds.items()}
    return {
        "profile": profile,
        "profile_reason": "asked for by name",
        "dataset_reason": "profile's choice, on disk",
        "dataset": "fashion-mnist",
        "date": "2030-01-02T03:04:05+00:00",
        "machine": {"cpu_cores": 2, "gpu": None},
        "command": "python -m unlearnlib.course",
        "notebooks": notebooks,
    }


def test_readme_run_times_fill_the_profiles_column_only():
    results = _results("cpu", **{"01_data": 431.6, "02_train": 48.2})
    results["notebooks"]["02_train"] |= {"status": "failed", "cell": 7}
    text = readme.update_run_times(README, results)
    assert "| 01 | [Data](notebooks/01_data.ipynb) | classes \\| counts | 12 s | 7 min 12 s |" in text
    assert "| 02 | [Training](notebooks/02_train.ipynb) | ResNets | 15 s | 48 s (failed, cell 7) |" in text
    assert "- **smoke**: measured by hand." in text
    cpu = "- **cpu**: measured 2030-01-02 on a 2-core CPU, no GPU, dataset fashion-mnist, with `python -m unlearnlib"
    assert cpu in text and "failed: 02" in text and "at commit" not in text
    results["commit"] = "0123456789abcdef"
    assert "`python -m unlearnlib.course` at commit 0123456; failed: 02." in readme.update_run_times(README, results)
    del results["commit"]
    outside = README.split("<!-- run-times: begin")[0], README.split("<!-- run-times: end -->")[1]
    assert text.startswith(outside[0]) and text.endswith(outside[1])
    assert readme.update_run_times(text, results) == text


def test_readme_run_times_of_a_new_profile_get_their_own_column():
    results = _results("gpu", **{"02_train": 30.0})
    results["machine"]["gpu"] = "NVIDIA T4"
    text = readme.update_run_times(README, results)
    assert "| # | notebook | what you learn | smoke | cpu | gpu |" in text
    assert (
        "| 01 | [Data](notebooks/01_data.ipynb) | classes \\| counts | 12 s | 14 min (by hand) | not measured |" in text
    )
    assert "| ResNets | 15 s | not measured | 30 s |" in text
    assert "- **gpu**: measured 2030-01-02 on a 2-core CPU, NVIDIA T4," in text and "(notebooks 02; the others" in text


@pytest.mark.parametrize(
    ("text", "seconds", "message"),
    [
        (README, {"03_new": 1.0}, "notebook 03_new has no row in the README's table"),
        (README, {"01_renamed": 1.0}, "row 01 does not link notebook 01_renamed.ipynb"),
        ("# no markers\n", {"01_data": 1.0}, "no run-time markers"),
    ],
)
def test_readme_run_times_refuse_what_they_cannot_place(text, seconds, message):
    with pytest.raises(ValueError, match=message):
        readme.update_run_times(text, _results("cpu", **seconds))


def test_readme_command_writes_the_file(tmp_path, capsys):
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "results.json").write_text(json.dumps(_results("smoke", **{"01_data": 9.0})))
    status = readme.main([str(tmp_path / "results.json"), "--readme-file", str(tmp_path / "README.md")])
    assert status == 0 and "| 9 s | 14 min (by hand) |" in (tmp_path / "README.md").read_text()
    assert "run times of 1 notebooks under the smoke profile updated" in capsys.readouterr().out


def test_results_md_gets_one_generated_section_per_profile(tmp_path):
    (tmp_path / "README.md").write_text(README)
    cpu = _results("cpu", **{"01_data": 431.6, "02_train": 48.2})
    cpu["notebooks"]["01_data"]["values"] = {"nearest_mean_accuracy": 0.6719}
    (tmp_path / "results.json").write_text(json.dumps(cpu))
    board = "Profile cpu, made by notebook 09.\n\n| method | F |\n|---|---|\n| retrain | 0.3 |\n"
    (tmp_path / "leaderboard.md").write_text(board)
    readme.main([str(tmp_path / "results.json"), "--readme-file", str(tmp_path / "README.md")])
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.startswith(readme.RESULTS_HEADER) and "## The cpu profile" in text and "### 01_data" in text
    assert "| nearest_mean_accuracy | 0.6719 |" in text and "| retrain | 0.3 |" in text
    assert "2030-01-02" in text and "`python -m unlearnlib.course`" in text, "each section says where it comes from"
    smoke = _results("smoke", **{"01_data": 9.0})
    (tmp_path / "leaderboard.md").unlink()
    (tmp_path / "results.json").write_text(json.dumps(smoke))
    readme.main([str(tmp_path / "results.json"), "--readme-file", str(tmp_path / "README.md")])
    both = (tmp_path / "RESULTS.md").read_text()
    assert both.index("## The cpu profile") < both.index("## The smoke profile") and "| retrain | 0.3 |" in both
    cpu["notebooks"]["01_data"]["values"] = {"nearest_mean_accuracy": 0.7}
    assert "0.7 |" in readme.update_results(both, cpu) and "0.6719" not in readme.update_results(both, cpu)


def test_the_real_readme_has_a_run_time_row_for_every_notebook():
    root = Path(__file__).resolve().parent.parent
    names = [p.stem for p in course.notebooks(root / "notebooks")]
    results = _results("gpu", **dict.fromkeys(names, 60.0))
    text = readme.update_run_times((root / "README.md").read_text(), results)
    assert text.count("| 60 s |") == len(names)


def test_notebook_run_times_come_from_the_readme_table():
    text = readme.update_run_times(README, _results("cpu", **{"01_data": 431.6}))
    assert readme.table_run_times(text) == {
        "01": {"smoke": "12 s", "cpu": "7 min 12 s"},
        "02": {"smoke": "15 s", "cpu": "not measured"},
    }
    cell = "# 01 · Data\n\nWhat you learn.\n\n**Run time** (by hand): smoke 9 s;\ncpu 3 min.\n\nMore text."
    rewritten = readme.with_run_time(cell, readme.table_run_times(text)["01"])
    assert rewritten.startswith("# 01 · Data\n\nWhat you learn.\n\n**Run time**, measured by `make course`")
    assert rewritten.endswith("smoke profile 12 s; cpu profile 7 min 12 s.\n\nMore text.")
    assert "by hand" not in rewritten and readme.with_run_time(rewritten, {"cpu": "7 min 12 s"}) != rewritten
    with pytest.raises(ValueError, match="0 paragraphs start with"):
        readme.with_run_time("# 01 · Data\n\nno run time here", {"cpu": "1 s"})


def test_readme_command_rewrites_each_notebooks_run_time(tmp_path, capsys):
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "notebooks").mkdir()
    for name in ("01_data", "02_train"):
        _notebook(tmp_path / "notebooks" / f"{name}.ipynb", "pass")
        notebook = nbformat.read(tmp_path / "notebooks" / f"{name}.ipynb", as_version=4)
        notebook.cells[0].source += "\n\n**Run time**: not measured yet."
        nbformat.write(notebook, tmp_path / "notebooks" / f"{name}.ipynb")
    (tmp_path / "results.json").write_text(json.dumps(_results("cpu", **{"02_train": 75.0})))
    readme.main([str(tmp_path / "results.json"), "--readme-file", str(tmp_path / "README.md")])
    assert "run-time paragraphs of 2 notebooks rewritten" in capsys.readouterr().out
    first = nbformat.read(tmp_path / "notebooks" / "02_train.ipynb", as_version=4).cells[0].source
    assert first.startswith("# 02_train\n\n**Run time**, measured") and "cpu profile 75 s." in first
    other = nbformat.read(tmp_path / "notebooks" / "01_data.ipynb", as_version=4).cells[0].source
    assert "smoke profile 12 s; cpu profile 14 min (by hand)." in other


def test_every_real_notebook_has_one_run_time_paragraph():
    root = Path(__file__).resolve().parent.parent
    for path in course.notebooks(root / "notebooks"):
        cell = readme.run_time_cell(nbformat.read(path, as_version=4))
        readme.with_run_time(cell.source, {"cpu": "1 s"})


def test_the_run_time_may_have_a_cell_of_its_own_after_the_title(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# 03 · A title"),
        nbformat.v4.new_markdown_cell("**You will learn**\n- a thing"),
        nbformat.v4.new_markdown_cell("**Run time**: not measured yet."),
        nbformat.v4.new_code_cell("pass"),
        nbformat.v4.new_markdown_cell("**Run time** of something else, later"),
    ]
    assert readme.run_time_cell(notebook) is notebook.cells[2]
    notebook.cells.pop(2)
    with pytest.raises(ValueError, match="no \\*\\*Run time\\*\\* paragraph"):
        readme.run_time_cell(notebook)


@pytest.mark.skipif(os.name != "posix", reason="Unix sockets are for Unix")
def test_a_notebook_runs_over_unix_sockets_without_a_network_warning(tmp_path, capfd):
    _notebook(tmp_path / "01_a.ipynb", "print('ran')")
    (tmp_path / "out").mkdir()
    outcome = course.execute(tmp_path / "01_a.ipynb", tmp_path / "out", dict(os.environ), 120)
    assert outcome.status == course.PASSED
    assert "over TCP" not in capfd.readouterr().err, "the kernel was reached over a network port"
    assert not list(tmp_path.glob("kernel*")) and not list(Path.cwd().glob("kernel-ipc*")), "no socket files left"
