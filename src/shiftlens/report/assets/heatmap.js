/* shiftlens report heatmaps: one canvas pixel per cell, scaled up to a fixed cell size, inside a scrolling grid
   whose row labels (prompt tokens) and column labels (response tokens) stay in view while it scrolls, so a
   300 × 150 matrix stays readable. The zoom control changes the cell size; labels hide below 9 px. */
var ShiftlensHeatmap = (function () {
  "use strict";

  var ZOOMS = [16, 12, 8, 4, 2], DEFAULT_CELL = 12, LABEL_MIN = 9;

  var el = ShiftlensCommon.el;

  /* A token as a short, visible axis label: surrounding spaces dropped, a space-only token as ␣, newlines ⏎,
     an empty display text (bytes of a character shown by the previous token) as … */
  function tokenLabel(text) {
    var t = String(text);
    if (!t) return "…";
    var shown = t.trim() ? t.trim() : t.replace(/ /g, "␣");
    return shown.replace(/\r?\n/g, "⏎").replace(/\t/g, "⇥");
  }

  function labels(cls, tokens, mask) {
    var box = el("div", cls), nodes = [];
    tokens.forEach(function (t, i) {
      var lab = el("span", "sl-lab" + (mask && mask[i] ? " sl-instr" : ""), tokenLabel(t));
      lab.title = JSON.stringify(String(t));
      nodes.push(lab);
      box.appendChild(lab);
    });
    return { box: box, nodes: nodes };
  }

  function setCell(grid, cell) {
    grid.style.setProperty("--cell", cell + "px");
    grid.classList.toggle("sl-nolabels", cell < LABEL_MIN);
    var canvas = grid.querySelector("canvas");
    canvas.style.width = canvas.width * cell + "px";
    canvas.style.height = canvas.height * cell + "px";
  }

  /* The grid of one n × m matrix: colorAt(k) gives cell k's [r, g, b]; rows/cols are the token texts;
     instruction rows (mask) get an orange mark on their label. */
  function build(n, m, colorAt, rows, cols, mask) {
    var grid = el("div", "sl-heat"), canvas = el("canvas");
    canvas.width = m;
    canvas.height = n;
    var img = new ImageData(m, n), px = img.data;
    for (var k = 0; k < n * m; k++) {
      var c = colorAt(k);
      px[4 * k] = c[0]; px[4 * k + 1] = c[1]; px[4 * k + 2] = c[2]; px[4 * k + 3] = 255;
    }
    canvas.getContext("2d").putImageData(img, 0, 0);
    var colLabels = labels("sl-cols", cols, null), rowLabels = labels("sl-rows", rows, mask);
    grid.appendChild(el("div", "sl-corner"));
    grid.appendChild(colLabels.box);
    grid.appendChild(rowLabels.box);
    grid.appendChild(canvas);
    setCell(grid, DEFAULT_CELL);
    return { grid: grid, canvas: canvas, rowLabels: rowLabels.nodes, colLabels: colLabels.nodes, n: n, m: m };
  }

  /* Cell (i, j) under a mouse event, or null outside the matrix. */
  function cellAt(map, event) {
    var rect = map.canvas.getBoundingClientRect();
    var j = Math.floor(((event.clientX - rect.left) / rect.width) * map.m);
    var i = Math.floor(((event.clientY - rect.top) / rect.height) * map.n);
    return i < 0 || j < 0 || i >= map.n || j >= map.m ? null : { i: i, j: j };
  }

  /* A "cell size" select that resizes every heatmap grid inside `scope`. */
  function zoomControl(scope) {
    var select = el("select", "sl-zoom");
    select.setAttribute("aria-label", "heatmap cell size");
    ZOOMS.forEach(function (z) {
      select.appendChild(new Option("cells " + z + " px" + (z < LABEL_MIN ? " (no labels)" : ""), String(z)));
    });
    select.value = String(DEFAULT_CELL);
    select.addEventListener("change", function () {
      scope.querySelectorAll(".sl-heat").forEach(function (g) { setCell(g, Number(select.value)); });
    });
    return select;
  }

  return { build: build, cellAt: cellAt, zoomControl: zoomControl, tokenLabel: tokenLabel };
})();
