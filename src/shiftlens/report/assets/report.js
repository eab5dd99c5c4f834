/* shiftlens report explorer: a searchable, filterable list of examples; an opened example gets its base,
   tuned and difference heatmaps (heatmap.js: canvases with token labels on both axes; matrices inflated only
   then), with hover tooltips.
   All strings go through textContent, never innerHTML, so token text cannot inject markup. */
(function () {
  "use strict";
  if (window.ShiftlensReport) return;

  var BASE = [43, 108, 176], TUNED = [221, 107, 32], INK = [44, 38, 110], WHITE = [255, 255, 255];

  var C = ShiftlensCommon, el = C.el, mix = C.mix, rgba = C.rgba, key = C.key, fmt = C.fmt, show = C.show;
  var inflate = C.inflate, sameArray = C.sameArray, colorTokens = C.colorTokens, legend = C.legend;
  var mapBox = C.mapBox;

  function Explorer(root, data) {
    var L = data.levels || 10;
    var examples = data.examples || [];
    var seq = [], div = {};
    for (var v = 0; v <= 255; v++) seq.push(mix(WHITE, INK, Math.min(1, v / L)));
    for (var d = -255; d <= 255; d++) div[d] = d >= 0 ? mix(WHITE, TUNED, Math.min(1, d / L)) : mix(WHITE, BASE, Math.min(1, -d / L));
    var cache = new Map(), haystacks = [], items = [], current = -1, highlighted = [];
    var tooltip = el("div", "sl-tooltip");
    tooltip.setAttribute("role", "tooltip");
    tooltip.hidden = true;
    root.appendChild(tooltip);

    function tip(event, text) {
      tooltip.textContent = text;
      tooltip.hidden = false;
      tooltip.style.left = event.clientX + 14 + "px";
      tooltip.style.top = event.clientY + 14 + "px";
    }
    function untip() {
      tooltip.hidden = true;
      highlight([]);
    }
    function highlight(nodes) {
      highlighted.forEach(function (n) { n.classList.remove("sl-hl"); });
      highlighted = nodes.filter(Boolean);
      highlighted.forEach(function (n) { n.classList.add("sl-hl"); });
    }

    function promptOf(ex, side) {
      return ex[side].prompt || ex.base.prompt;
    }

    function decode(index) {
      if (!cache.has(index)) {
        var ex = examples[index];
        cache.set(index, Promise.all(["base", "tuned"].map(function (s) {
          return ex[s] ? inflate(ex[s].z) : Promise.resolve(null);
        })).then(function (mats) { return { base: mats[0], tuned: mats[1] }; }));
      }
      return cache.get(index);
    }

    /* ---- the list: ids and snippets only; filters by text, group and rating ---- */
    var sidebar = el("div", "sl-sidebar"), detail = el("div", "sl-detail");
    var explorer = el("div", "sl-explorer");
    var search = el("input", "sl-search"), groupSel = el("select", "sl-group"), ratingSel = el("select", "sl-rating");
    var count = el("div", "sl-count"), list = el("ul", "sl-list");
    search.type = "search";
    search.placeholder = "search id or prompt text";
    search.setAttribute("aria-label", "search examples");
    groupSel.setAttribute("aria-label", "filter by group");
    ratingSel.setAttribute("aria-label", "filter by rating");

    function options(select, label, values) {
      select.appendChild(new Option("all " + label, ""));
      values.forEach(function (v) { select.appendChild(new Option(label + ": " + v, v)); });
    }
    function distinct(field, numeric) {
      var seen = Array.from(new Set(examples.map(function (e) { return key(e[field]); })));
      return seen.sort(function (a, b) { return numeric ? Number(a) - Number(b) : a.localeCompare(b); });
    }
    options(groupSel, "groups", distinct("group", false));
    options(ratingSel, "ratings", distinct("rating", true));

    function haystack(i) {
      if (haystacks[i] === undefined) {
        var ex = examples[i], side = ex.base ? "base" : "tuned";
        haystacks[i] = (ex.id + " " + ex.snippet + " " + promptOf(ex, side).join("")).toLowerCase();
      }
      return haystacks[i];
    }

    function applyFilter() {
      var q = search.value.trim().toLowerCase(), g = groupSel.value, r = ratingSel.value, shown = 0;
      for (var i = 0; i < items.length; i++) {
        var ex = examples[i];
        var ok = (!g || key(ex.group) === g) && (!r || key(ex.rating) === r) && (!q || haystack(i).indexOf(q) >= 0);
        items[i].hidden = !ok;
        if (ok) shown++;
      }
      count.textContent = shown + " of " + examples.length + " examples shown";
    }

    function scoreText(ex) {
      return "score base " + fmt(ex.base && ex.base.score) + " · tuned " + fmt(ex.tuned && ex.tuned.score);
    }

    var frag = document.createDocumentFragment();
    examples.forEach(function (ex, i) {
      var li = el("li");
      li.tabIndex = 0;
      li.dataset.index = i;
      li.appendChild(el("span", "sl-id", ex.id));
      li.appendChild(el("span", "sl-badge", key(ex.group)));
      li.appendChild(el("span", "sl-badge", "rating " + key(ex.rating)));
      li.appendChild(el("div", "sl-snip", ex.snippet));
      li.appendChild(el("div", "sl-note", scoreText(ex)));
      items.push(li);
      frag.appendChild(li);
    });
    list.appendChild(frag);
    list.addEventListener("click", function (e) {
      var li = e.target.closest("li");
      if (li) open(Number(li.dataset.index));
    });
    list.addEventListener("keydown", function (e) {
      var li = e.target.closest("li");
      if (li && e.key === "Enter") open(Number(li.dataset.index));
    });
    [search, groupSel, ratingSel].forEach(function (c) {
      c.addEventListener("input", applyFilter);
      c.addEventListener("change", applyFilter);
    });

    var controls = el("div", "sl-controls");
    [search, groupSel, ratingSel, count].forEach(function (c) { controls.appendChild(c); });
    sidebar.appendChild(controls);
    sidebar.appendChild(list);
    if (!data.single) explorer.appendChild(sidebar);
    detail.appendChild(el("p", "sl-empty", examples.length ? "Open an example from the list." : "No examples."));
    explorer.appendChild(detail);
    root.appendChild(explorer);
    applyFilter();

    /* ---- one example: token panels and heatmaps ---- */
    function tokenPanel(tokens, mask, densities) {
      var box = el("div", "sl-tokens"), spans = [];
      tokens.forEach(function (t, i) {
        var s = el("span", "sl-tok" + (mask && mask[i] ? " sl-instr" : ""), t);
        s.dataset.i = i;
        spans.push(s);
        box.appendChild(s);
      });
      box.addEventListener("mousemove", function (e) {
        var s = e.target.closest(".sl-tok");
        if (!s) return untip();
        var i = Number(s.dataset.i), text = show(tokens[i]) + (mask && mask[i] ? " · instruction" : "");
        Object.keys(densities || {}).forEach(function (m) { text += "\n" + m + " density " + fmt(densities[m][i]); });
        tip(e, text);
        highlight([s]);
      });
      box.addEventListener("mouseleave", untip);
      return { box: box, spans: spans };
    }

    /* Draw a matrix into its box with token labels on both axes; hovering a cell shows describe(i, j) and
       highlights its row and column tokens in the text panels and on the axes. */
    function heatmap(box, n, m, colorAt, rows, cols, mask, describe, rowSpans, colSpans) {
      var map = ShiftlensHeatmap.build(n, m, colorAt, rows, cols, mask);
      box.appendChild(map.grid);
      map.canvas.addEventListener("mousemove", function (e) {
        var at = ShiftlensHeatmap.cellAt(map, e);
        if (!at) return untip();
        tip(e, describe(at.i, at.j));
        highlight([rowSpans[at.i], colSpans[at.j], map.rowLabels[at.i], map.colLabels[at.j]]);
      });
      map.canvas.addEventListener("mouseleave", untip);
      return map;
    }

    async function open(index) {
      current = index;
      items.forEach(function (li, i) { li.classList.toggle("sl-active", i === index); });
      var ex = examples[index];
      detail.textContent = "";
      detail.appendChild(el("h3", null, ex.id));
      detail.appendChild(el("p", "sl-note", "group " + key(ex.group) + " · rating " + key(ex.rating) + " · " + scoreText(ex)));
      var sides = ["base", "tuned"].filter(function (s) { return ex[s]; });
      var shared = sides.length === 2 && !ex.tuned.prompt;
      var prompts = {}, responses = {};

      if (shared) {
        var dens = { base: ex.base.density, tuned: ex.tuned.density };
        var panel = tokenPanel(ex.base.prompt, ex.base.mask, dens);
        var mode = el("select", "sl-mode");
        mode.setAttribute("aria-label", "colour prompt tokens by");
        [["tuned", "tuned density"], ["base", "base density"], ["diff", "tuned − base density"]].forEach(function (o) {
          mode.appendChild(new Option("colour by " + o[1], o[0]));
        });
        var recolor = function () {
          if (mode.value === "diff") {
            var delta = dens.tuned.map(function (t, i) { return t - dens.base[i]; });
            colorTokens(panel.spans, delta, function (v) { return v >= 0 ? TUNED : BASE; });
          } else colorTokens(panel.spans, dens[mode.value], mode.value === "base" ? BASE : TUNED);
        };
        mode.addEventListener("change", recolor);
        recolor();
        detail.appendChild(el("h4", null, "Prompt (instruction tokens underlined) "));
        detail.lastChild.appendChild(mode);
        detail.appendChild(panel.box);
        prompts.base = prompts.tuned = panel.spans;
      } else {
        sides.forEach(function (s) {
          var p = tokenPanel(promptOf(ex, s), ex[s].mask, (function () { var o = {}; o[s] = ex[s].density; return o; })());
          colorTokens(p.spans, ex[s].density, s === "base" ? BASE : TUNED);
          detail.appendChild(el("h4", null, "Prompt as tokenized for " + s + " (instruction tokens underlined)"));
          detail.appendChild(p.box);
          prompts[s] = p.spans;
        });
      }
      sides.forEach(function (s) {
        var p = tokenPanel(ex[s].response, null, null);
        detail.appendChild(el("h4", null, "Response (" + s + " run)"));
        detail.appendChild(p.box);
        responses[s] = p.spans;
      });
      var maps = el("div", "sl-maps");
      var heading = el("h4", null, "Attribution: rows = prompt tokens, columns = response tokens (levels 0–" + L + ") ");
      heading.appendChild(ShiftlensHeatmap.zoomControl(maps));
      detail.appendChild(heading);
      detail.appendChild(maps);

      var mats;
      try {
        mats = await decode(index);
      } catch (err) {
        detail.appendChild(el("p", "sl-note", "Could not decode the matrices: " + err));
        return;
      }
      if (current !== index) return;
      var drawn = {};
      sides.forEach(function (s) {
        var side = ex[s], mat = mats[s], box = mapBox(s, legend(WHITE, INK, ["0", String(L)]));
        maps.appendChild(box);
        if (!side.n || !side.m) { box.appendChild(el("p", "sl-note", "empty matrix")); return; }
        var pr = promptOf(ex, s);
        drawn[s] = heatmap(box, side.n, side.m, function (k) { return seq[mat[k]]; }, pr, side.response, side.mask,
          function (i, j) {
            return s + ": level " + mat[i * side.m + j] + " of " + L + "\nprompt " + show(pr[i]) +
              (side.mask[i] ? " (instruction)" : "") + "\nresponse " + show(side.response[j]);
          }, prompts[s], responses[s]);
      });
      var comparable = shared && drawn.base && drawn.tuned && ex.base.n === ex.tuned.n && ex.base.m === ex.tuned.m &&
        sameArray(ex.base.response, ex.tuned.response);
      if (comparable) {
        var b = mats.base, t = mats.tuned, box = mapBox("tuned − base", legend(BASE, TUNED, ["base higher", "tuned higher"]));
        maps.appendChild(box);
        heatmap(box, ex.base.n, ex.base.m, function (k) { return div[t[k] - b[k]]; }, ex.base.prompt, ex.base.response,
          ex.base.mask, function (i, j) {
            var k = i * ex.base.m + j;
            return "tuned − base: " + (t[k] - b[k] >= 0 ? "+" : "") + (t[k] - b[k]) + " (base " + b[k] + ", tuned " + t[k] +
              ")\nprompt " + show(ex.base.prompt[i]) + (ex.base.mask[i] ? " (instruction)" : "") +
              "\nresponse " + show(ex.base.response[j]);
          }, prompts.base, responses.base);
      } else if (sides.length === 2) {
        detail.appendChild(el("p", "sl-note", "No cell-wise difference map: the two models' responses (or prompt " +
          "tokens) differ. Compare the prompt-token densities above (colour by tuned − base)."));
      }
      root.dataset.drawn = ex.id;
    }

    if (data.single && examples.length) open(0);
    root.openExample = function (id) {  /* a link elsewhere in the report (e.g. a disagreeing token) opens one */
      var index = examples.findIndex(function (ex) { return String(ex.id) === id; });
      if (index >= 0) open(index);
      return index >= 0;
    };
    return { open: open, applyFilter: applyFilter };
  }

  function mount(root) {
    if (!root || root.dataset.mounted) return;
    root.dataset.mounted = "1";
    var script = root.querySelector("script.sl-data");
    try {
      Explorer(root, JSON.parse(script.textContent));
    } catch (err) {
      root.appendChild(el("p", "sl-note", "The example explorer failed to start: " + err));
      throw err;
    }
    root.dataset.ready = "1";
  }

  function followLink(e) {
    var link = e.target.closest("a.sl-example-link");
    if (!link) return;
    var root = document.querySelector(".sl-explorer-root");
    if (root && root.openExample && root.openExample(link.dataset.example)) {
      root.scrollIntoView();
      e.preventDefault();
    }
  }

  function mountAll() {
    document.querySelectorAll(".sl-explorer-root").forEach(mount);
    document.addEventListener("click", followLink);
    window.__shiftlensReady = performance.now();
  }

  window.ShiftlensReport = { mount: mount, mountAll: mountAll };
})();
