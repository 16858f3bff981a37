"""The mutation-testing driver: its configuration of mutmut, its list of equivalent mutants and its scores."""

from __future__ import annotations

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from unlearnlib import mutation
from unlearnlib.colab import checkout_root

DIFF = """\
--- unlearnlib/mia.py
+++ unlearnlib/mia.py
@@ -1,3 +1,3 @@
 def f(x):
-    return x < 1
+    return x <= 1
"""


def test_every_target_names_a_module_and_test_files_that_exist():
    root = checkout_root()
    for name, target in mutation.TARGETS.items():
        assert (root / target.source).is_file(), name
        assert all((root / test).is_file() for test in target.tests), name
        assert 0.5 < target.goal <= 1


def test_the_mutmut_table_mutates_one_module_against_its_own_tests():
    target = mutation.TARGETS["mia"]
    table = tomllib.loads(mutation.mutmut_section(target))["tool"]["mutmut"]
    assert table["only_mutate"] == ["unlearnlib/mia.py"]
    assert table["pytest_add_cli_args_test_selection"] == list(target.tests)
    assert "no:randomly" in table["pytest_add_cli_args"]
    wall_limit = (0.0 + table["timeout_constant"]) * table["timeout_multiplier"]
    assert wall_limit >= 20, "a test whose fixture loads a dataset must not time out on the fixture alone"


def test_a_workspace_holds_the_package_its_tests_and_the_mutmut_table(tmp_path):
    mutation.prepare(tmp_path / "ws", mutation.TARGETS["forget"])
    assert (tmp_path / "ws" / "unlearnlib" / "forget.py").is_file()
    assert (tmp_path / "ws" / "tests" / "test_forget.py").is_file()
    config = tomllib.loads((tmp_path / "ws" / "pyproject.toml").read_text())
    assert config["tool"]["mutmut"]["only_mutate"] == ["unlearnlib/forget.py"]
    assert config["project"]["name"] == "unlearnlib", "the project's own table is kept"


def test_a_mutant_is_identified_by_the_lines_it_adds():
    assert mutation.changed_lines(DIFF) == "return x <= 1"


def test_the_score_leaves_equivalent_mutants_out():
    score = mutation.Score("mia", mutants=20, killed=16, equivalent=2, survivors=["a", "b"], goal=0.9, seconds=1)
    assert score.score == pytest.approx(16 / 18) and not score.met
    assert mutation.Score("x", 10, 9, 0, ["a"], 0.9, 1).met


def test_the_listed_equivalents_each_give_a_change_and_a_reason(tmp_path):
    listed = mutation.load_equivalents(checkout_root() / mutation.EQUIVALENTS)
    assert all(entry["change"].strip() and len(entry["reason"]) > 20 for entry in listed.values())
    assert all(name.split(".")[0] == "unlearnlib" and "__mutmut_" in name for name in listed)
    bad = tmp_path / "equivalents.toml"
    bad.write_text('["unlearnlib.mia.x_f__mutmut_1"]\nchange = "return x <= 1"\n')
    with pytest.raises(ValueError, match="lacks reason"):
        mutation.load_equivalents(bad)


def test_the_results_section_is_written_once_and_then_replaced():
    run = {
        "command": "python -m unlearnlib.mutation",
        "date": "2026-11-24T10:00:00+00:00",
        "machine": {"cpu_cores": 2, "gpu": None},
        "scores": [vars(mutation.Score("mia", 20, 18, 1, ["a"], 0.9, 120.0))],
    }
    first = mutation.update_results("# Measured results\n", run)
    assert first.count("<!-- mutation: begin -->") == 1 == first.count("<!-- mutation: end -->")
    assert "| mia | 20 | 18 | 1 | 1 | 94.7% | 90% |" in first
    run["scores"][0]["killed"] = 19
    second = mutation.update_results(first, run)
    assert second.count("<!-- mutation: begin -->") == 1 and "| mia | 20 | 18 |" not in second
    assert "| mia | 20 | 19 | 1 | 1 | 100.0% | 90% |" in second and second.startswith("# Measured results")


def test_unknown_modules_are_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        mutation.main(["--modules", "mia,metrcs"])
    assert "unknown module 'metrcs'" in capsys.readouterr().err
