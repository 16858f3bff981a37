"""Building the decks and the course site (unlearnlib.slides): what is shown, what is loaded, what is missing.

The browser checks of what gets built are in test_browser.py (make test-slides)."""

import copy
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from unlearnlib import colab, slides

ROOT = Path(__file__).resolve().parent.parent


def _cell(cell, slide_type="-", tags=()):
    cell.metadata["slideshow"] = {"slide_type": slide_type}
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _executed(nb):
    """``nb`` as if run: every code cell prints its own first line, upper-cased."""
    run = copy.deepcopy(nb)
    for k, cell in enumerate(c for c in run.cells if c.cell_type == "code"):
        cell.outputs = [new_output("stream", name="stdout", text=f"ran {cell.source.splitlines()[0].upper()}\n")]
        cell.execution_count = k + 1
    return run


def _course(tmp_path, name="01_topic"):
    badge = colab.read_source().badge(f"{name}.ipynb")
    nb = new_notebook(
        cells=[
            _cell(new_markdown_cell(f"# 01 · A topic\n\n{badge}\n\n*What it is about.*"), "slide"),
            _cell(new_markdown_cell("*Speaker notes.* Say this."), "notes"),
            _cell(new_code_cell("setup = 1"), "skip"),
            _cell(new_markdown_cell("## 1. A section with $x^2$"), "slide"),
            _cell(new_code_cell("hidden_source = 2")),
            _cell(new_code_cell("def method_by_hand():\n    return 3"), tags=["show-code"]),
            _cell(new_markdown_cell("## What we learned\n\n- a thing"), "slide"),
        ]
    )
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "build" / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    nbformat.write(_executed(nb), tmp_path / "build" / "notebooks" / f"{name}.ipynb")
    return nb


@pytest.fixture
def packages(tmp_path):
    """The files the decks load, as npm would lay them out (empty: these tests open nothing in a browser)."""
    root = tmp_path / "node_modules"
    for part in slides._REVEAL_PARTS:
        (root / "reveal.js" / part).mkdir(parents=True)
    (root / "reveal.js" / "dist" / "reveal.js").write_text("")
    for part in slides._MATHJAX_PARTS:
        path = root / "mathjax" / part
        if part.endswith(".js"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        else:
            path.mkdir(parents=True)
    return root


def _build(tmp_path, packages, what=slides.WHAT):
    return slides.build(
        what,
        source=tmp_path / "notebooks",
        executed=tmp_path / "build" / "notebooks",
        out=tmp_path / "build",
        packages=packages,
    )


def test_merge_takes_outputs_by_source_whatever_markdown_was_added():
    source = new_notebook(cells=[new_code_cell("a = 1"), new_code_cell("b = 2")])
    executed = _executed(source)
    source.cells.insert(1, new_markdown_cell("*Speaker notes.* new"))
    merged, stale = slides.merge(source, executed)
    assert [c.outputs[0].text for c in merged.cells if c.cell_type == "code"] == ["ran A = 1\n", "ran B = 2\n"]
    assert stale == []
    assert not source.cells[0].get("outputs"), "the source notebook itself is left as it was"


def test_merge_names_a_code_cell_changed_since_it_ran_and_shows_it_without_outputs():
    source = new_notebook(cells=[new_code_cell("a = 1"), new_code_cell("b = 2"), new_code_cell("c = 3")])
    executed = _executed(source)
    source.cells[1].source = "b = 20"
    merged, stale = slides.merge(source, executed)
    assert stale == [1]
    assert merged.cells[1].outputs == [] and merged.cells[1].execution_count is None
    assert merged.cells[2].outputs[0].text == "ran C = 3\n", "cells after the changed one keep their outputs"


def test_decks_hide_code_unless_tagged_and_load_nothing_from_the_network(tmp_path, packages):
    _course(tmp_path)
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "01_topic.ipynb", as_version=4)
    executed.cells[4].outputs.append(new_output("stream", name="stderr", text="models: 40%|####  | 2/5\n"))
    bar = {slides.WIDGET: {"model_id": "x"}, "text/plain": "retrain: 0%| | 0/3"}
    executed.cells[4].outputs.append(new_output("display_data", data=bar))
    table = "<table><thead><tr><th>gap_to_retrained</th></tr></thead><tbody><tr><td>0.1</td></tr></tbody></table>"
    executed.cells[4].outputs.append(new_output("display_data", data={"text/html": table}))
    nbformat.write(executed, tmp_path / "build" / "notebooks" / "01_topic.ipynb")
    built = _build(tmp_path, packages, ("decks",))
    deck = (tmp_path / "build" / "slides" / "01_topic.slides.html").read_text()
    assert built.files == [tmp_path / "build" / "slides" / "01_topic.slides.html"] and built.stale == {}
    assert "hidden_source" not in deck and "ran HIDDEN_SOURCE = 2" in deck, "source hidden, output shown"
    assert "method_by_hand" in deck, "a cell tagged show-code shows its source"
    assert '<aside class="notes">' in deck and "Say this." in deck
    assert "setup = 1" not in deck, "skipped cells are not on the slides"
    assert "models: 40%" not in deck and "retrain: 0%" not in deck, "nor progress bars"
    assert "<th>gap_<wbr/>to_<wbr/>retrained</th>" in deck, "long column names may break after an underscore"
    assert colab.BADGE_IMAGE not in deck and slides.LOCAL_BADGE in deck
    loads = re.findall(r"""(?:<script[^>]*\ssrc|<link[^>]*\shref|<img[^>]*\ssrc)=["']([^"']+)""", deck)
    assert loads and not [url for url in loads if re.match(r"(https?:)?//", url)], loads
    assert not re.search(r"@import\s+url\(\s*['\"]?(https?:)?//", deck)
    for loaded in ("lib/reveal.js/dist/reveal.js", "lib/mathjax/MathJax.js", "lib/deck.js", "lib/colab-badge.svg"):
        assert (tmp_path / "build" / "slides" / loaded).is_file(), loaded


def test_the_site_has_an_index_in_teaching_order_with_colab_and_deck_links(tmp_path, packages):
    _course(tmp_path, "02_later")
    _course(tmp_path, "01_topic")
    _build(tmp_path, packages)
    site = tmp_path / "build" / "site"
    index = (site / "index.html").read_text()
    assert index.index('href="01_topic.html"') < index.index('href="02_later.html"')
    assert colab.read_source().badge_url("01_topic.ipynb") in index
    assert 'href="../slides/01_topic.slides.html"' in index
    page = (site / "01_topic.html").read_text()
    assert ">hidden_source<" in page and "ran HIDDEN_SOURCE = 2" in page, "readers see the code and its output"
    assert not re.findall(r"""<script[^>]*\ssrc=["'](?:https?:)?//""", page)
    assert colab.BADGE_IMAGE not in page
    assert "Say this." not in page, "the speaker notes are for the lecturer"


def test_a_missing_executed_notebook_is_named_with_the_command_that_makes_it(tmp_path, packages):
    _course(tmp_path)
    (tmp_path / "build" / "notebooks" / "01_topic.ipynb").unlink()
    with pytest.raises(slides.MissingInput, match=r"01_topic.ipynb .*make course"):
        _build(tmp_path, packages)


def test_missing_npm_packages_are_named_with_the_command_that_installs_them(tmp_path):
    _course(tmp_path)
    with pytest.raises(slides.MissingInput, match="npm install --prefix slides"):
        _build(tmp_path, tmp_path / "nothing")


def test_a_changed_code_cell_is_reported(tmp_path, packages):
    nb = _course(tmp_path)
    nb.cells[4].source = "hidden_source = 20"
    nbformat.write(nb, tmp_path / "notebooks" / "01_topic.ipynb")
    built = _build(tmp_path, packages, ("decks",))
    assert built.stale == {"01_topic": [4]}
    assert "make course ONLY=01" in built.report()


def test_command_line_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        slides.main(["deks"])
    assert exit_.value.code == 2 and "unknown output 'deks'; choose from decks, site" in capsys.readouterr().err
    assert (
        slides.main(["decks", "--executed", str(tmp_path), "--notebooks", str(ROOT / "notebooks"), "--only", "01"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no executed copy of 01_data_analysis.ipynb") and "\n" not in err


def test_titles_and_summaries_come_from_the_notebook():
    badge = "[![Open in Colab](x)](y)"
    nb = new_notebook(cells=[new_markdown_cell(f"# 03 · Measuring\n\n{badge}\n\n*How we **measure** `it`.*")])
    assert slides.title_of(nb, "fallback") == "03 · Measuring"
    assert slides.summary_of(nb) == "How we measure it."
    assert slides.title_of(new_notebook(), "fallback") == "fallback"
