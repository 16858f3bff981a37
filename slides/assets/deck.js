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

  function start() {
    fitFigures();
    Reveal.initialize({
      width: WIDTH, height: HEIGHT, margin: 0, minScale: 0.1, maxScale: 3,
      center: false, hash: true, controls: true, progress: true, slideNumber: "c/t",
      transition: "slide", plugins: [RevealNotes]
    });
    Reveal.on("ready", function () { document.body.dataset.deck = "ready"; });
  }

  window.addEventListener("load", function () {
    if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(start); else start();
  });
})();
