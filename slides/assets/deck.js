/* Start-up of the course's lecture decks: once the page and its maths are ready, size each slide's figures to the
   room its text leaves them, then start reveal.js on a 1280x720 slide. The browser test waits for
   document.body.dataset.deck === "ready". */
(function () {
  "use strict";
  var WIDTH = 1280, HEIGHT = 720;
  var SMALLEST = 0.45;  // a figure shrinks to no less than this share of its height; below that, split the slide

  function leafSlides(root) {
    return Array.prototype.filter.call(root.querySelectorAll("section"), function (s) {
      return !s.querySelector("section");
    });
  }

  // Lay one slide out as reveal.js will (the slide's width, shown), call measure, and hide it again.
  function measured(slide, root, measure) {
    var chain = [];
    for (var el = slide; el && el !== root; el = el.parentElement) chain.push(el);
    chain.forEach(function (el) { el.style.display = "block"; });
    var value = measure();
    chain.forEach(function (el) { el.style.display = ""; });
    return value;
  }

  function fitFigures() {
    var root = document.querySelector(".reveal .slides");
    root.style.width = WIDTH + "px";
    leafSlides(root).forEach(function (slide) {
      var figures = Array.prototype.slice.call(slide.querySelectorAll(".jp-OutputArea-output img"));
      if (!figures.length) return;
      measured(slide, root, function () {
        var excess = slide.scrollHeight - HEIGHT;
        if (excess <= 0) return;
        var heights = figures.map(function (f) { return f.getBoundingClientRect().height; });
        var total = heights.reduce(function (a, b) { return a + b; }, 0);
        var scale = Math.max(SMALLEST, 1 - excess / total);
        figures.forEach(function (f, i) {
          f.style.height = Math.floor(heights[i] * scale) + "px";
          f.style.width = "auto";
        });
      });
    });
    root.style.width = "";
  }

  // Speaker notes for reveal.js's speaker view, a window without MathJax: each slide's notes become its data-notes,
  // taken before the maths is typeset, with simple TeX written plainly ($\varepsilon = -\frac1n$ becomes ε = -1/n).
  var PLAIN = [
    [/\\varepsilon/g, "ε"], [/\\lambda/g, "λ"], [/\\theta/g, "θ"], [/\\alpha/g, "α"], [/\\infty/g, "∞"],
    [/\\to\b/g, "→"], [/\\ge\b/g, "≥"], [/\\le\b/g, "≤"], [/\\cdot/g, "·"], [/\\log\b/g, "log"],
    [/\\frac\{([^}]*)\}\{([^}]*)\}/g, "$1/$2"], [/\\frac(\w)(\w)/g, "$1/$2"], [/\\mathcal\{(\w+)\}/g, "$1"],
    [/_\{([^}]*)\}/g, "_$1"], [/\$/g, ""]
  ];
  function plainNotes() {
    leafSlides(document.querySelector(".reveal .slides")).forEach(function (slide) {
      var notes = slide.querySelectorAll("aside.notes");
      if (!notes.length) return;
      var text = Array.prototype.map.call(notes, function (n) {
        return (n.querySelector(".jp-RenderedMarkdown") || n).innerHTML;  // the note's text, not its cell's frame
      }).join(" ").replace(/\s+/g, " ").replace(/>\s+</g, "><").trim();
      PLAIN.forEach(function (rule) { text = text.replace(rule[0], rule[1]); });
      slide.setAttribute("data-notes", text);
      Array.prototype.forEach.call(notes, function (n) { n.remove(); });  // the speaker view would prefer them
    });
  }
  plainNotes();

  function start() {
    fitFigures();
    Reveal.initialize({
      width: WIDTH, height: HEIGHT, margin: 0, minScale: 0.1, maxScale: 3,
      center: false, hash: true, controls: true, progress: true, slideNumber: "c/t", transition: "slide",
      pdfSeparateFragments: false, pdfMaxPagesPerSlide: 1,  // a handout page per slide, its fragments shown
      plugins: [RevealNotes]
    });
    Reveal.on("ready", function () { document.body.dataset.deck = "ready"; });
  }

  window.addEventListener("load", function () {
    if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(start); else start();
  });
})();
