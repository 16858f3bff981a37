"""Lecture decks and the course site, built from the notebooks and their executed copies, for use with no network.

    python -m unlearnlib.slides [decks|site ...] [--executed build/notebooks] [--out build] [--only 03,05]

Each deck (``build/slides/NN_topic.slides.html``, reveal.js) and each page of the site (``build/site/``, with an
index in teaching order) takes its cells and their slide metadata from ``notebooks/`` and each code cell's outputs
from the executed copy that ``make course`` wrote under any profile, matched by the cell's source. Editing a slide
type, a speaker note or a paragraph therefore needs no re-run; a code cell whose source changed since it ran is
shown without outputs and named in the report.

Decks hide code inputs, except in cells tagged ``show-code`` (where the code is the point: the algorithm cores);
neither decks nor pages show progress bars (frozen widgets, stderr).
Both load reveal.js and MathJax from their own ``lib/`` folder, copied from the npm packages of
``slides/package.json``, and the Colab badge from a local image, so nothing is fetched when they are opened.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import difflib
import html
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import colab, config
from .course import notebooks, select

SHOW_CODE = "show-code"
"""The cell tag that shows a code cell's source on its slide (decks hide code inputs otherwise)."""

LOCAL_BADGE = "lib/colab-badge.svg"
WHAT = ("decks", "site")
# What the decks and pages load from lib/: reveal.js's script, styles and speaker-notes plugin, and MathJax 2 with
# the one configuration they use (TeX input, CommonHTML output, its web fonts).
_REVEAL_PARTS = ("dist", "plugin/notes")
_MATHJAX_PARTS = (
    "MathJax.js",
    "config/TeX-AMS_CHTML-full.js",
    "config/Safe.js",
    "extensions",
    "jax/input/TeX",
    "jax/output/CommonHTML",
    "jax/element",
    "fonts/HTML-CSS/TeX/woff",
    "localization/en",
)
MATHJAX_URL = "lib/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
WIDGET = "application/vnd.jupyter.widget-view+json"
_HEADER = re.compile(r"(<thead>)(.*?)(</thead>)", re.DOTALL)


class MissingInput(RuntimeError):
    """What a deck or page is built from is not there: executed notebooks, or the npm packages."""


def slides_dir() -> Path:
    """The checkout's ``slides/`` folder: templates, assets and the npm packages the decks load."""
    return colab.checkout_root() / "slides"


def _code_sources(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def merge(source, executed) -> tuple[object, list[int]]:
    """``source`` with each code cell's outputs taken from the cell of ``executed`` that has the same source.

    Code cells are matched in order by their source (so added or removed markdown, notes and metadata do not
    matter). Returns the merged copy and the indices (in ``source``) of code cells that found no executed cell.
    """
    merged = copy.deepcopy(source)
    executed_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    ours = [cell for cell in merged.cells if cell.cell_type == "code"]
    matcher = difflib.SequenceMatcher(a=_code_sources(merged), b=_code_sources(executed), autojunk=False)
    matched = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            matched[block.a + k] = executed_cells[block.b + k]
    stale = []
    for k, cell in enumerate(ours):
        twin = matched.get(k)
        cell.outputs = copy.deepcopy(twin.outputs) if twin is not None else []
        cell.execution_count = twin.execution_count if twin is not None else None
        if twin is None and cell.source.strip():
            stale.append(merged.cells.index(cell))
    return merged, stale


def local_badges(nb) -> None:
    """Point every Colab badge of ``nb``'s markdown at the local copy of its image."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(colab.BADGE_IMAGE, LOCAL_BADGE)


def hide_code(nb) -> None:
    """Hide the source of every code cell of ``nb`` not tagged ``show-code`` (its outputs stay)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and SHOW_CODE not in cell.metadata.get("tags", []):
            cell.metadata.setdefault("transient", {})["remove_source"] = True


def _noise(output) -> bool:
    return (output.output_type == "stream" and output.name == "stderr") or WIDGET in output.get("data", {})


def drop_progress(nb) -> None:
    """Remove progress bars from ``nb``'s outputs: widgets (frozen, with no state to show offline) and stderr."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not _noise(o)]


def break_headers(nb) -> None:
    """Let HTML tables' column names break after an underscore (``gap_to_<wbr>retrained``), to fit a slide."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if "text/html" in output.get("data", {}):
                output.data["text/html"] = _HEADER.sub(
                    lambda m: m.group(1) + re.sub(r"(?<=\w)_(?=\w)", "_<wbr>", m.group(2)) + m.group(3),
                    output.data["text/html"],
                )


def drop_notes(nb) -> None:
    """Remove ``nb``'s speaker notes (cells of slide type notes): they are for the lecturer, not for readers."""
    nb.cells = [c for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") != "notes"]


def title_of(nb, fallback: str) -> str:
    """The text of ``nb``'s first level-1 heading, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"^#\s+(.+)$", cell.source, re.MULTILINE)
            if found:
                return found.group(1).strip()
    return fallback


def summary_of(nb) -> str:
    """The first paragraph of ``nb``'s first cell after its heading and badge, as plain text."""
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return ""
    for paragraph in nb.cells[0].source.split("\n\n"):
        text = paragraph.strip()
        if text and not text.startswith(("#", "[![")):
            text = re.sub(r"\*\*|`|\*", "", " ".join(text.split()))
            return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return ""


def copy_libraries(out: Path, packages: Path | None = None) -> None:
    """Copy into ``out/lib`` what the decks and pages load: reveal.js, MathJax, the course's styles and scripts."""
    packages = packages or slides_dir() / "node_modules"
    if not (packages / "reveal.js").is_dir() or not (packages / "mathjax").is_dir():
        raise MissingInput(
            f"reveal.js and MathJax are not in {packages}: npm install --prefix slides (make slides runs it)"
        )
    lib = out / "lib"
    for package, parts in (("reveal.js", _REVEAL_PARTS), ("mathjax", _MATHJAX_PARTS)):
        for part in parts:
            source, target = packages / package / part, lib / package / part
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
    for asset in (slides_dir() / "assets").iterdir():
        shutil.copy2(asset, lib / asset.name)


@dataclass
class Built:
    """What :func:`build` made: the files written and, per notebook, the code cells shown without outputs."""

    files: list[Path] = field(default_factory=list)
    stale: dict[str, list[int]] = field(default_factory=dict)

    def report(self) -> str:
        lines = [f"wrote {len(self.files)} files under {self.files[0].parent.parent if self.files else '-'}"]
        for name, cells in self.stale.items():
            lines.append(
                f"  {name}: code cell(s) {', '.join(map(str, cells))} changed since it was executed and show no "
                f"outputs: make course ONLY={name[:2]} to run it again"
            )
        return "\n".join(lines)


def _exporter(kind: str):
    from nbconvert import HTMLExporter, SlidesExporter

    common = dict(
        extra_template_basedirs=[str(slides_dir() / "templates")],
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        mathjax_url=MATHJAX_URL,
    )
    if kind == "decks":
        return SlidesExporter(template_name="deck", reveal_url_prefix="lib/reveal.js", reveal_theme="white", **common)
    return HTMLExporter(template_name="page", **common)


def _run_facts(executed: Path) -> str:
    """Which profile and dataset the executed notebooks ran on, and when, from ``make course``'s results."""
    results = executed.parent / "results.json"
    if not results.is_file():
        return ""
    facts = json.loads(results.read_text())
    return f"{facts.get('profile', '?')} profile, {facts.get('dataset', '?')}, on {facts.get('date', '?')[:10]}"


def _index_page(entries: list[dict], facts: str) -> str:
    rows = []
    for entry in entries:
        links = [f'<a href="{entry["page"]}">Read</a>']
        links += [f'<a href="{entry["deck"]}">Slides</a>'] if entry.get("deck") else []
        links += [f'<a href="{entry["pdf"]}">PDF</a>'] if entry.get("pdf") else []
        links.append(f'<a href="{html.escape(entry["colab"])}"><img src="{LOCAL_BADGE}" alt="Open in Colab"></a>')
        rows.append(
            f'<li><h2><a href="{entry["page"]}">{html.escape(entry["title"])}</a></h2>'
            f'<p>{html.escape(entry["summary"])}</p><p class="links">{" · ".join(links)}</p></li>'
        )
    ran = f'<p class="facts">The pages show the notebooks as executed on the {html.escape(facts)}.</p>' if facts else ""
    built = datetime.date.today().isoformat()
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Machine unlearning: the course</title><link rel="stylesheet" href="lib/site.css">'
        '<script type="text/x-mathjax-config">MathJax.Hub.Config({tex2jax: {inlineMath: [["$", "$"]], '
        "processEscapes: true}});</script>"
        f'<script src="{MATHJAX_URL}"></script></head>\n'
        '<body class="course-index"><main><h1>Machine unlearning</h1>'
        "<p>A course in notebooks: from the data and a ResNet, through influence functions and each unlearning "
        "algorithm, to evaluation by membership inference. Read them in this order; each opens in Colab to run.</p>"
        f'{ran}<ol class="notebooks">{"".join(rows)}</ol>'
        f'<p class="facts">Built {built} by <code>make site</code>.</p></main></body></html>\n'
    )


def build(
    what: tuple[str, ...] = WHAT,
    *,
    executed: Path | None = None,
    source: Path | None = None,
    out: Path | None = None,
    only: str | None = None,
    packages: Path | None = None,
) -> Built:
    """Write the decks (``out/slides``) and/or the site (``out/site``) of the executed notebooks.

    Every notebook of ``source`` (or those ``only`` names) needs an executed copy in ``executed``.
    """
    import nbformat

    unknown = [w for w in what if w not in WHAT]
    if unknown:
        raise ValueError(f"unknown output {', '.join(map(repr, unknown))}; choose from {', '.join(WHAT)}")
    source = source or config.root_dir() / "notebooks"
    executed = executed or config.build_dir() / "notebooks"
    out = out or config.build_dir()
    chosen = select(notebooks(source), only)
    missing = [p.name for p in chosen if not (executed / p.name).is_file()]
    if missing:
        raise MissingInput(
            f"no executed copy of {', '.join(missing)} in {executed}: run the notebooks first "
            "(make course; UNLEARN_PROFILE=smoke make course takes minutes)"
        )
    built = Built()
    merged = {}
    for path in chosen:
        nb, stale = merge(nbformat.read(path, as_version=4), nbformat.read(executed / path.name, as_version=4))
        if stale:
            built.stale[path.stem] = stale
        local_badges(nb)
        drop_progress(nb)
        merged[path.stem] = nb
    if "decks" in what:
        built.files += _write_decks(merged, out / "slides", packages)
    if "site" in what:
        built.files += _write_site(merged, out, _run_facts(executed), packages)
    return built


def _write_decks(merged: dict, folder: Path, packages: Path | None) -> list[Path]:
    """Each merged notebook as a deck in ``folder``: code hidden but where tagged, long column names breakable."""
    folder.mkdir(parents=True, exist_ok=True)
    copy_libraries(folder, packages)
    exporter, written = _exporter("decks"), []
    for stem, nb in merged.items():
        nb = copy.deepcopy(nb)
        hide_code(nb)
        break_headers(nb)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title_of(nb, stem)}})
        written.append(folder / f"{stem}.slides.html")
        written[-1].write_text(body, encoding="utf-8")
    return written


def _write_site(merged: dict, out: Path, facts: str, packages: Path | None) -> list[Path]:
    """Each merged notebook as a page of ``out/site``, without speaker notes, linked to its deck, PDF (those in
    ``out/slides``) and Colab; and the index page, in teaching order."""
    folder = out / "site"
    folder.mkdir(parents=True, exist_ok=True)
    copy_libraries(folder, packages)
    exporter, repository, written, entries = _exporter("site"), colab.read_source(), [], []
    for stem, nb in merged.items():
        nb = copy.deepcopy(nb)
        drop_notes(nb)
        deck, pdf = out / "slides" / f"{stem}.slides.html", out / "slides" / f"{stem}.pdf"
        entry = {
            "title": title_of(nb, stem),
            "summary": summary_of(nb),
            "page": f"{stem}.html",
            "deck": f"../slides/{deck.name}" if deck.is_file() else None,
            "pdf": f"../slides/{pdf.name}" if pdf.is_file() else None,
            "colab": repository.badge_url(f"{stem}.ipynb"),
        }
        links = [{"href": entry["deck"], "label": "Slides"}] if entry["deck"] else []
        links.append({"href": entry["colab"], "label": "Open in Colab"})
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"name": entry["title"]}, "course_links": links}
        )
        written.append(folder / entry["page"])
        written[-1].write_text(body, encoding="utf-8")
        entries.append(entry)
    written.append(folder / "index.html")
    written[-1].write_text(_index_page(entries, facts), encoding="utf-8")
    return written


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.slides",
        description=__doc__.split("\n")[0],
        epilog="exit status: 0 when built, 1 when an input is missing, 2 for a usage error.",
    )
    parser.add_argument("what", nargs="*", metavar="decks|site", help="what to build (default: both)")
    parser.add_argument("--executed", type=Path, help="the executed notebooks (default: build/notebooks)")
    parser.add_argument("--notebooks", type=Path, help="their sources (default: notebooks)")
    parser.add_argument("--out", type=Path, help="where slides/ and site/ go (default: build)")
    parser.add_argument("--only", metavar="NN,NN", help="only these notebooks, e.g. 03,05 (default: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        built = build(
            tuple(dict.fromkeys(args.what or WHAT)),
            executed=args.executed,
            source=args.notebooks,
            out=args.out,
            only=args.only,
        )
    except ValueError as err:
        parser.error(str(err))
    except MissingInput as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(built.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
