"""The decks and the course site in a real browser: headless Chromium, with every request off the machine blocked.

    python -m unlearnlib.browser [check] [build/slides/*.slides.html ...] [--site build/site] [--shots DIR]
    python -m unlearnlib.browser pdf [build/slides/*.slides.html ...]

``check`` visits every slide of every deck at 1280x720 with all its fragments shown, saves a screenshot of it
(``build/slides/shots/<deck>/NNN.png``) and names each problem: content taller or wider than the slide, an image
that did not load, maths that MathJax left as raw ``$...$``, a request that would leave the machine, a file the
page asked for that is not there, a script error. With ``--site`` it opens every page of the course site too.
``pdf`` prints each deck, one slide a page, into ``NN_topic.pdf`` beside it. The browser is Playwright's, driving
the system's Chromium (``CHROMIUM``, else ``chromium`` on the PATH) when there is one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import config

WIDTH, HEIGHT = 1280, 720
SLACK = 1  # pixels of rounding allowed beyond the slide's edge
CHROMIUM_ENV = "CHROMIUM"
_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_LOAD_TIMEOUT_MS = 60_000

# Runs in the page on the current slide: its size, what sticks out of it, images that did not load, raw maths.
_MEASURE = """
({width, height, slack}) => {
  const slide = Reveal.getCurrentSlide(), scale = Reveal.getScale();
  const box = document.querySelector('.reveal .slides').getBoundingClientRect();  // the 1280x720 frame, scaled
  const outside = [];
  for (const el of slide.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden' && !el.closest('.fragment')) continue;
    const right = (r.right - box.left) / scale, bottom = (r.bottom - box.top) / scale;
    if (right > width + slack || bottom > height + slack) outside.push([el, right, bottom]);
  }
  const innermost = outside.filter(([el]) => !outside.some(([other]) => other !== el && el.contains(other)));
  const clipped = [...slide.querySelectorAll('pre, table, .jp-OutputArea-output')].filter(
    el => el.scrollWidth > el.clientWidth + slack && getComputedStyle(el).overflowX !== 'visible');
  const text = slide.cloneNode(true);
  text.querySelectorAll('pre, code, script, style, .MathJax, .MathJax_Preview, .MJX_Assistive_MathML, aside.notes')
    .forEach(el => el.remove());
  const raw = (text.textContent.match(/\\$[^$\\n]+\\$|\\$\\$|\\\\\\(|\\\\\\[/g) || []).slice(0, 3);
  const heading = slide.querySelector('h1, h2, h3');
  const describe = el => el.tagName.toLowerCase()
    + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/)[0] : '')
    + ' "' + (el.textContent || el.alt || '').trim().slice(0, 40) + '"';
  return {
    title: heading ? heading.textContent.replace('¶', '').trim().slice(0, 60) : '',
    height: Math.round(Math.max((slide.getBoundingClientRect().top - box.top) / scale + slide.scrollHeight,
                                ...outside.map(o => o[2]))),
    width: Math.round(Math.max((slide.getBoundingClientRect().left - box.left) / scale + slide.scrollWidth,
                               ...outside.map(o => o[1]))),
    outside: innermost.slice(0, 3).map(([el]) => describe(el)),
    clipped: clipped.slice(0, 3).map(describe),
    broken: [...slide.querySelectorAll('img')].filter(i => !i.complete || i.naturalWidth === 0)
      .map(i => (i.getAttribute('src') || '').slice(0, 80)),
    raw_math: raw,
  };
}
"""

_SLIDES = """
() => Reveal.getSlides().map(s => { const i = Reveal.getIndices(s); return [i.h, i.v || 0]; })
"""

_TYPESET = """
() => new Promise(done => (window.MathJax && MathJax.Hub) ? MathJax.Hub.Queue(() => done(true)) : done(false))
"""

_PAGE = """
() => {
  const text = document.body.cloneNode(true);
  text.querySelectorAll('pre, code, script, style, .MathJax, .MathJax_Preview, .MJX_Assistive_MathML, .jp-InputArea')
    .forEach(el => el.remove());
  return {
    broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
      .map(i => (i.getAttribute('src') || '').slice(0, 80)),
    raw_math: (text.textContent.match(/\\$[^$\\n]+\\$|\\$\\$/g) || []).slice(0, 3),
  };
}
"""


class NoBrowser(RuntimeError):
    """No Chromium can be had here: neither the system's nor one Playwright installed."""


def chromium() -> str | None:
    """The system's Chromium: ``CHROMIUM``, else the first of chromium, chromium-browser, google-chrome found."""
    named = os.environ.get(CHROMIUM_ENV, "").strip()
    if named:
        return named
    return next((found for found in map(shutil.which, _CANDIDATES) if found), None)


@dataclass
class Offline:
    """What a page asked for that it may not have: requests off the machine (blocked), files not there, errors."""

    remote: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"request off the machine (blocked): {url}" for url in dict.fromkeys(self.remote)]
            + [f"file not there: {url}" for url in dict.fromkeys(self.missing)]
            + [f"script error: {error}" for error in dict.fromkeys(self.errors)]
        )


@contextmanager
def browser() -> Iterator[object]:
    """A headless Chromium (Playwright's), at 1280x720; raises :class:`NoBrowser` where there is none."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as err:
        raise NoBrowser("the browser checks need Playwright: pip install -e '.[slides]' (make setup does)") from err
    executable = chromium()
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=args)
        except Error as err:
            raise NoBrowser(
                f"no Chromium could be started ({str(err).splitlines()[0]}): install one (Debian: apt-get install "
                f"chromium; elsewhere: python -m playwright install chromium) or name it in {CHROMIUM_ENV}"
            ) from err
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def offline_page(launched) -> Iterator[tuple[object, Offline]]:
    """A page of ``launched`` on which every request but local files is blocked, and recorded with the failures."""
    context = launched.new_context(viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1)
    seen = Offline()

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            request_route.continue_()
        else:
            seen.remote.append(url)
            request_route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("requestfailed", lambda r: r.url.startswith("file:") and seen.missing.append(r.url))
    page.on("pageerror", lambda error: seen.errors.append(str(error).splitlines()[0]))
    try:
        yield page, seen
    finally:
        context.close()


@dataclass
class SlideCheck:
    """One slide as measured: where it is, its title, its size, and what is wrong with it."""

    number: int
    h: int
    v: int
    title: str
    height: int
    width: int
    problems: list[str]


@dataclass
class DeckCheck:
    """Every slide of one deck, and the deck's own problems (requests, missing files, errors)."""

    deck: Path
    slides: list[SlideCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        per_slide = [
            f"slide {s.number} ({s.h}.{s.v}) {s.title!r}: {problem}" for s in self.slides for problem in s.problems
        ]
        return self.problems + per_slide

    def summary(self) -> str:
        tallest = max((s.height for s in self.slides), default=0)
        verdict = "ok" if not self.failures else f"{len(self.failures)} problem(s)"
        return f"{self.deck.name}: {len(self.slides)} slides, tallest {tallest} px of {HEIGHT}: {verdict}"


def _slide_problems(measured: dict) -> list[str]:
    problems = []
    if measured["height"] > HEIGHT + SLACK:
        problems.append(f"content {measured['height']} px tall, the slide {HEIGHT}: split it or shrink the figure")
    if measured["height"] > HEIGHT + SLACK and measured["outside"]:
        problems[-1] += f" (below the edge: {', '.join(measured['outside'])})"
    if measured["width"] > WIDTH + SLACK:
        problems.append(f"content {measured['width']} px wide, the slide {WIDTH}: {', '.join(measured['outside'])}")
    if measured["clipped"]:
        problems.append(f"lines cut off on the right: {', '.join(measured['clipped'])}")
    problems += [f"image did not load: {src}" for src in measured["broken"]]
    problems += [f"raw maths left by MathJax: {text!r}" for text in measured["raw_math"]]
    return problems


NOT_STARTED = "the deck never started (reveal.js or MathJax did not load)"


def _started(page, url: str) -> bool:
    """Open a deck at ``url`` and wait until reveal.js has started and MathJax has typeset; False if it never did."""
    page.goto(url)
    try:
        page.wait_for_function("document.body.dataset.deck === 'ready'", timeout=_LOAD_TIMEOUT_MS)
    except Exception:  # noqa: BLE001 (Playwright's timeout): the caller says what the page itself reported
        return False
    page.evaluate(_TYPESET)
    return True


def check_deck(launched, deck: Path, shots: Path | None = None) -> DeckCheck:
    """Open ``deck`` offline, measure and (into ``shots``) photograph every slide with its fragments shown."""
    result = DeckCheck(deck)
    with offline_page(launched) as (page, seen):
        if not _started(page, deck.resolve().as_uri()):
            result.problems += seen.problems() or [NOT_STARTED]
            return result
        page.evaluate("() => Reveal.configure({transition: 'none', backgroundTransition: 'none', controls: false})")
        page.add_style_tag(content=".reveal .fragment { opacity: 1 !important; visibility: inherit !important; }")
        if shots is not None:
            folder = shots / deck.name.removesuffix(".slides.html")
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        for number, (h, v) in enumerate(page.evaluate(_SLIDES), start=1):
            page.evaluate(f"() => Reveal.slide({h}, {v})")
            measured = page.evaluate(_MEASURE, {"width": WIDTH, "height": HEIGHT, "slack": SLACK})
            result.slides.append(
                SlideCheck(
                    number, h, v, measured["title"], measured["height"], measured["width"], _slide_problems(measured)
                )
            )
            if shots is not None:
                page.screenshot(path=str(folder / f"{number:03d}.png"))
        result.problems += seen.problems()
    return result


def check_page(launched, page_path: Path) -> list[str]:
    """Open one page of the course site offline and name its problems (as for a deck, but no slide sizes)."""
    with offline_page(launched) as (page, seen):
        page.goto(page_path.resolve().as_uri(), wait_until="load")
        page.evaluate(_TYPESET)
        measured = page.evaluate(_PAGE)
        problems = [f"image did not load: {src}" for src in measured["broken"]]
        problems += [f"raw maths left by MathJax: {text!r}" for text in measured["raw_math"]]
        return [f"{page_path.name}: {problem}" for problem in problems + seen.problems()]


def print_pdf(launched, deck: Path, target: Path | None = None) -> Path:
    """Print ``deck`` from its offline copy, one slide a page at 1280x720, into ``target`` (default: beside it)."""
    target = target or deck.with_name(deck.name.removesuffix(".slides.html") + ".pdf")
    with offline_page(launched) as (page, seen):
        started = _started(page, deck.resolve().as_uri() + "?print-pdf")
        if not started or seen.problems():
            raise RuntimeError(f"{deck.name} cannot be printed offline: {'; '.join(seen.problems() or [NOT_STARTED])}")
        page.wait_for_selector(".pdf-page", state="attached", timeout=_LOAD_TIMEOUT_MS)
        page.pdf(path=str(target), width=f"{WIDTH}px", height=f"{HEIGHT}px", print_background=True)
    return target


def decks_in(folder: Path) -> list[Path]:
    """The decks of ``folder``, in teaching order."""
    return sorted(folder.glob("[0-9][0-9]_*.slides.html"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unlearnlib.browser",
        description=__doc__.split("\n")[0],
        epilog="exit status: 0 when every deck and page passed, 1 when one failed or no browser could be had, "
        "2 for a usage error.",
    )
    parser.add_argument("action", nargs="?", choices=("check", "pdf"), default="check")
    parser.add_argument("decks", nargs="*", type=Path, help="default: every deck in build/slides")
    parser.add_argument("--site", type=Path, help="also open every page of this course site (check)")
    parser.add_argument("--shots", type=Path, help="save a screenshot of every slide here (check)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    decks = args.decks or decks_in(config.build_dir() / "slides")
    missing = [str(d) for d in decks if not d.is_file()]
    if missing or not decks:
        parser.error(f"no deck at {', '.join(missing)}" if missing else "no deck in build/slides: run make slides")
    if args.site is not None and not (args.site / "index.html").is_file():
        parser.error(f"--site {args.site} has no index.html: run make site")
    failed = False
    try:
        with browser() as launched:
            for deck in decks:
                if args.action == "pdf":
                    print(f"printed {print_pdf(launched, deck)}", flush=True)
                    continue
                checked = check_deck(launched, deck, args.shots)
                print(checked.summary(), flush=True)
                for failure in checked.failures:
                    print(f"  {failure}")
                failed |= bool(checked.failures)
            if args.site is not None and args.action == "check":
                pages = sorted(args.site.glob("*.html"))
                problems = [p for page in pages for p in check_page(launched, page)]
                print(
                    f"site {args.site}: {len(pages)} pages: {'ok' if not problems else f'{len(problems)} problem(s)'}"
                )
                for problem in problems:
                    print(f"  {problem}")
                failed |= bool(problems)
    except NoBrowser as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
