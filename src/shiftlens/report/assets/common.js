/* shiftlens report: small DOM, colour and data helpers shared by heatmap.js and report.js. */
var ShiftlensCommon = (function () {
  "use strict";

  var NONE = "(none)";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function mix(a, b, t) {
    return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
  }

  function rgba(c, alpha) {
    return "rgba(" + Math.round(c[0]) + "," + Math.round(c[1]) + "," + Math.round(c[2]) + "," + alpha + ")";
  }

  function key(value) {
    return value === null || value === undefined ? NONE : String(value);
  }

  function fmt(x) {
    return x === null || x === undefined ? "–" : Number(x).toPrecision(3);
  }

  function show(text) {
    return JSON.stringify(String(text));
  }

  async function inflate(b64) {
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  function sameArray(a, b) {
    if (!a || !b || a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  function colorTokens(spans, values, color) {
    var peak = 0;
    values.forEach(function (v) { peak = Math.max(peak, Math.abs(v)); });
    spans.forEach(function (s, i) {
      var v = values[i] || 0, c = typeof color === "function" ? color(v) : color;
      s.style.background = peak > 0 ? rgba(c, (0.55 * Math.abs(v)) / peak) : "";
    });
  }

  function legend(from, to, labels) {
    var wrap = el("span", "sl-note"), bar = el("span", "sl-legend");
    bar.style.background = "linear-gradient(to right," + rgba(from, 1) + "," + rgba(to, 1) + ")";
    wrap.appendChild(document.createTextNode(labels[0]));
    wrap.appendChild(bar);
    wrap.appendChild(document.createTextNode(labels[1]));
    return wrap;
  }

  function mapBox(caption, legendNode) {
    var box = el("div", "sl-map");
    box.appendChild(el("div", "sl-caption", caption));
    box.appendChild(legendNode);
    return box;
  }

  return {
    el: el, mix: mix, rgba: rgba, key: key, fmt: fmt, show: show, inflate: inflate, sameArray: sameArray,
    colorTokens: colorTokens, legend: legend, mapBox: mapBox
  };
})();
