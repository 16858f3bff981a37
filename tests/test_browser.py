"""The decks and the course site in headless Chromium, with every request off the machine blocked (make test-slides).

First the checker against decks whose faults are known (a slide too tall, one too wide, a remote image, a missing
file, maths MathJax was told to leave alone), then every deck and page that make slides and make site built, with a
screenshot of every slide in build/slides/shots and a PDF of every deck."""

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from unlearnlib import browser, slides

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "build"
DECKS = browser.decks_in(BUILT / "slides")
PAGES = sorted((BUILT / "site").glob("*.html"))


@pytest.fixture(scope="module")
def launched():
    manager = browser.browser()
    try:
        opened = manager.__enter__()
    except browser.NoBrowser as err:
        pytest.skip(f"no browser for the deck checks: {err}")
    yield opened
    manager.__exit__(None, None, None)


def _markdown(text, slide_type="slide"):
    cell = new_markdown_cell(text)
    cell.metadata["slideshow"] = {"slide_type": slide_type}
    return cell


def _deck(tmp_path, *cells, code_output=None):
    """A deck built the course's way from one notebook holding ``cells`` (and one code cell printing code_output)."""
    if not (slides.slides_dir() / "node_modules" / "reveal.js").is_dir():
        pytest.skip("reveal.js and MathJax are not installed: npm install --prefix slides (make test-slides does)")
    nb = new_notebook(cells=[_markdown("# 01 · A deck\n\n*About a thing.*"), *cells])
    if code_output is not None:
        code = new_code_cell("print(x)")
        code.metadata["slideshow"] = {"slide_type": "slide"}
        nb.cells.append(code)
    for folder in ("notebooks", "executed"):
        (tmp_path / folder).mkdir(exist_ok=True)
    nbformat.write(nb, tmp_path / "notebooks" / "01_deck.ipynb")
    if code_output is not None:
        nb.cells[-1].outputs = [new_output("stream", name="stdout", text=code_output)]
    nbformat.write(nb, tmp_path / "executed" / "01_deck.ipynb")
    slides.build(("decks",), source=tmp_path / "notebooks", executed=tmp_path / "executed", out=tmp_path)
    return tmp_path / "slides" / "01_deck.slides.html"


def test_a_deck_that_fits_passes_with_maths_typeset_and_a_shot_per_slide(launched, tmp_path):
    deck = _deck(tmp_path, _markdown("## Maths\n\nThe loss $\\ell(z, \\theta)$ and $$H = \\nabla^2 R.$$"))
    checked = browser.check_deck(launched, deck, tmp_path / "shots")
    assert checked.failures == []
    assert [(s.h, s.v) for s in checked.slides] == [(0, 0), (1, 0)]
    assert all(s.height <= browser.HEIGHT for s in checked.slides)
    assert sorted(p.name for p in (tmp_path / "shots" / "01_deck").iterdir()) == ["001.png", "002.png"]


def test_a_slide_taller_than_720_pixels_is_named(launched, tmp_path):
    long = "\n\n".join(f"Paragraph {k} of a slide with far too much to say." for k in range(30))
    checked = browser.check_deck(launched, _deck(tmp_path, _markdown("## Too long\n\n" + long)))
    [failure] = checked.failures
    assert failure.startswith("slide 2 (1.0) 'Too long': content") and "px tall, the slide 720" in failure
    assert checked.slides[1].height > 1000


def test_slides_are_measured_from_the_top_of_the_screen_whatever_their_kind(launched, tmp_path):
    """A block 660 px tall fits below the slide's top margin; one 700 px tall does not, on a section or a subslide."""
    block = '<div style="height: {}px; background: #ddd">a block</div>'
    cells = [_markdown(block.format(660)), _markdown(block.format(660), "subslide")]
    cells += [_markdown(block.format(700)), _markdown(block.format(700), "subslide")]
    checked = browser.check_deck(launched, _deck(tmp_path, *cells))
    assert [(s.h, s.v, s.height > browser.HEIGHT) for s in checked.slides[1:]] == [
        (1, 0, False),
        (1, 1, False),
        (2, 0, True),
        (2, 1, True),
    ]
    section, subslide = checked.slides[1:3]
    assert section.height == subslide.height and 690 <= section.height <= 720, "the top margin, the block, no more"


def test_content_wider_than_the_slide_is_named(launched, tmp_path):
    wide = '<div style="width: 1800px; background: #eee">a banner wider than any slide</div>'
    checked = browser.check_deck(launched, _deck(tmp_path, _markdown("## Too wide\n\n" + wide)))
    assert any("px wide, the slide 1280" in f for f in checked.failures), checked.failures


def test_printed_lines_wrap_rather_than_being_cut_off(launched, tmp_path):
    checked = browser.check_deck(launched, _deck(tmp_path, code_output="x" * 400 + "\n"))
    assert checked.failures == []


def test_a_remote_image_is_blocked_and_both_faults_named(launched, tmp_path):
    checked = browser.check_deck(launched, _deck(tmp_path, _markdown("## Remote\n\n![a](https://example.org/a.png)")))
    assert "request off the machine (blocked): https://example.org/a.png" in checked.failures
    assert any(re.search(r"'Remote': image did not load: https://example.org/a.png", f) for f in checked.failures)


def test_a_missing_local_file_is_named(launched, tmp_path):
    checked = browser.check_deck(launched, _deck(tmp_path, _markdown("## Missing\n\n![a](not-there.png)")))
    assert any(f.startswith("file not there: file://") and f.endswith("not-there.png") for f in checked.failures)


def test_maths_left_raw_is_named(launched, tmp_path):
    raw = '<span class="tex2jax_ignore">left alone: $x^2$</span>'
    checked = browser.check_deck(launched, _deck(tmp_path, _markdown("## Raw\n\n" + raw)))
    assert checked.failures == ["slide 2 (1.0) 'Raw': raw maths left by MathJax: '$x^2$'"]


def test_speaker_notes_reach_the_speaker_view_with_their_maths_written_plainly(launched, tmp_path):
    notes = _markdown("*Speaker notes.* Set $\\varepsilon = -\\frac1n$ and damp with $\\lambda$.", "notes")
    deck = _deck(tmp_path, _markdown("## A section"), notes)
    with browser.offline_page(launched) as (page, _):
        page.goto(deck.resolve().as_uri())
        page.wait_for_function("document.body.dataset.deck === 'ready'")
        shown = page.evaluate("() => Reveal.getSlideNotes(Reveal.getSlides()[1])")
        left = page.evaluate("() => document.querySelectorAll('aside.notes').length")
    assert shown == "<p><em>Speaker notes.</em> Set ε = -1/n and damp with λ.</p>" and left == 0


def test_a_pdf_has_one_page_per_slide_its_fragments_shown(launched, tmp_path):
    deck = _deck(tmp_path, _markdown("## Two"), _markdown("## Three", "subslide"), _markdown("later", "fragment"))
    pdf = browser.print_pdf(launched, deck)
    assert pdf == tmp_path / "slides" / "01_deck.pdf"
    assert len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes())) == 3


def test_make_slides_built_every_deck():
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [d.name.removesuffix(".slides.html") for d in DECKS] == notebooks, "run make slides first"


@pytest.mark.parametrize("deck", DECKS, ids=[d.name[:2] for d in DECKS])
def test_every_slide_of_every_deck_fits_offline(launched, deck):
    checked = browser.check_deck(launched, deck, BUILT / "slides" / "shots")
    print(checked.summary())
    assert checked.failures == [], "\n".join([checked.summary(), *checked.failures])


@pytest.mark.parametrize("deck", DECKS, ids=[d.name[:2] for d in DECKS])
def test_every_deck_prints_as_a_handout(launched, deck):
    html = deck.read_text()
    slide_count = html.count("<section") - html.count("<section><section")  # a section holds its first slide
    pdf = browser.print_pdf(launched, deck)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes())) == slide_count


@pytest.mark.parametrize("page", PAGES, ids=[p.stem[:2] for p in PAGES])
def test_every_page_of_the_site_reads_offline(launched, page):
    assert browser.check_page(launched, page) == []
