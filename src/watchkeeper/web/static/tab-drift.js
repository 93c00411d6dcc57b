// Drift tab: a heat-map of each feature's drift per window (colour = statistic ÷ the
// feature's drift threshold, so features judged by different methods compare), a symbol on
// every flagged cell, and — for the cell clicked or chosen from the list — the reference-vs-
// window histogram with the statistic and thresholds. The chosen cell is kept in the URL
// (`cell=FEATURE@WINDOW_START`) so a link re-opens it.
"use strict";

(() => {
  const { el, fmt } = WK;
  const RATIO_MAX = 2; // colours stop at twice the threshold; hover shows the real number
  const SYMBOL = { drift: "▲", warn: "△", ok: "", insufficient: "–" };
  const SEVERITY_TEXT = { drift: "▲ drift", warn: "△ warn", ok: "✓ ok", insufficient: "– insufficient data" };
  const SEVERITY_BADGE = { drift: "sev-critical", warn: "sev-warning", ok: "ok", insufficient: "" };
  const COLORSCALE = [
    [0, "#f6f8fa"],
    [0.2, "#fef3c7"],
    [0.45, "#fdba74"],
    [0.5, "#f97316"],
    [0.75, "#c2410c"],
    [1, "#7f1d1d"],
  ];
  let timeline = null; // the last /drift/timeline answer drawn
  let histogramKey = null; // what the histogram card shows now

  // ---- the selected cell, kept in the URL ----------------------------------------------
  function readCell() {
    const raw = WK.ctx.params.get("cell");
    if (!raw) return null;
    const at = raw.lastIndexOf("@");
    if (at <= 0) return null;
    const start = new Date(raw.slice(at + 1));
    if (Number.isNaN(start.getTime())) return null;
    return { feature: raw.slice(0, at), start: start.toISOString().replace(".000Z", "Z") };
  }

  function cellParam(feature, start) {
    return `${feature}@${start}`;
  }

  function select(feature, start) {
    WK.setParam("cell", cellParam(feature, start));
    for (const [id, value] of [["cell-feature", feature], ["cell-window", start]]) {
      const box = document.getElementById(id);
      if (box && [...box.options].some((o) => o.value === value)) box.value = value;
    }
    showSelected().catch(WK.showError);
  }

  // ---- the heat-map -------------------------------------------------------------------------
  const windowMs = () => timeline.window_seconds * 1000;
  const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");
  // "2026-11-30 22:25 – 22:30 UTC"; a day window is named by its date.
  function windowLabel(start) {
    const from = fmt.time(start);
    if (windowMs() >= 86400000) return `${from.slice(0, 10)} (UTC day)`;
    return `${from.slice(0, 16)} – ${fmt.time(iso(Date.parse(start) + windowMs())).slice(11, 16)} UTC`;
  }

  function traces(data) {
    const rows = data.features;
    const mid = data.windows.map((w) => iso(Date.parse(w) + windowMs() / 2));
    const y = rows.map((f) => f.feature);
    const z = rows.map((f) => f.statistic.map((s) => (s === null || !f.threshold ? null : s / f.threshold)));
    const customdata = rows.map((f) =>
      data.windows.map((w, i) => [f.statistic[i], f.threshold, f.method, f.severity[i], f.n[i], f.p_adjusted[i], w, windowLabel(w)]),
    );
    const text = rows.map((f) => f.severity.map((s) => (s === "insufficient" ? "" : SYMBOL[s] || "")));
    const dense = data.windows.length > 60; // thin cells: no gaps, no "–" marks (grey says it)
    const grey = rows.map((f) => f.severity.map((s, i) => (s === "insufficient" || f.statistic[i] === null ? 1 : null)));
    return [
      {
        type: "heatmap",
        name: "drift",
        x: mid,
        y,
        z,
        customdata,
        text,
        texttemplate: "%{text}",
        textfont: { size: dense ? 9 : 12 },
        zmin: 0,
        zmax: RATIO_MAX,
        colorscale: COLORSCALE,
        hoverongaps: false,
        xgap: dense ? 0 : 1,
        ygap: 1,
        colorbar: {
          title: { text: "statistic ÷ drift threshold", side: "right" },
          tickvals: [0, 0.5, 1, 1.5, 2],
          ticktext: ["0", "0.5", "1 = threshold", "1.5", "≥ 2"],
          len: 1,
          thickness: 14,
        },
        hovertemplate:
          "<b>%{y}</b><br>%{customdata[7]}<br>%{customdata[2]} = %{customdata[0]:.4f}" +
          " (threshold %{customdata[1]})<br>severity: %{customdata[3]}, n = %{customdata[4]}" +
          "<br>adjusted p = %{customdata[5]:.2g}<extra></extra>",
      },
      {
        type: "heatmap",
        name: "insufficient data",
        x: mid,
        y,
        z: grey,
        customdata,
        text: grey.map((row) => row.map((g) => (g && !dense ? SYMBOL.insufficient : ""))),
        texttemplate: "%{text}",
        textfont: { size: 12, color: "#57606a" },
        colorscale: [[0, "#d0d7de"], [1, "#d0d7de"]],
        showscale: false,
        hoverongaps: false,
        xgap: dense ? 0 : 1,
        ygap: 1,
        hovertemplate: "<b>%{y}</b><br>%{customdata[7]}<br>insufficient data (n = %{customdata[4]})<extra></extra>",
      },
    ];
  }

  function heatLayout(data, cell) {
    const rows = data.features.length;
    const shapes = [];
    const row = cell ? data.features.findIndex((f) => f.feature === cell.feature) : -1;
    if (row >= 0) {
      const start = Date.parse(cell.start);
      shapes.push({
        type: "rect", xref: "x", yref: "y", x0: iso(start), x1: iso(start + windowMs()),
        y0: row - 0.5, y1: row + 0.5, line: { color: "#1b1f24", width: 3 }, fillcolor: "rgba(0,0,0,0)",
      });
    }
    const first = data.windows[0];
    const last = data.windows[data.windows.length - 1];
    return {
      height: Math.max(220, rows * 26 + 90),
      hovermode: "closest",
      margin: { l: 140, r: 16, t: 16, b: 48 },
      xaxis: { range: first ? [first, iso(Date.parse(last) + windowMs())] : undefined, showgrid: false },
      yaxis: { type: "category", autorange: "reversed", showgrid: false, automargin: true, rangemode: null, tickfont: { size: 12 } },
      shapes,
    };
  }

  function drawHeatmap(data, cell) {
    const div = WK.chartCard(
      "drift-heatmap",
      "Drift per feature and window",
      `${WK.ctx.heatWindow} windows. Colour: each window's drift statistic divided by the feature's drift threshold ` +
        "(1 = at the threshold; so features judged by different methods compare). ▲ drifted, △ warned, " +
        "grey with – too little data. Worst features first; click a cell (or pick one below) for its histogram.",
    );
    const card = div.closest(".card");
    card.classList.add("wide");
    div.setAttribute("aria-label", "Heat-map of drift per feature and window; the same cells are listed in the table below");
    WK.plot(div, traces(data), heatLayout(data, cell));
    if (!div.dataset.clickBound) {
      div.dataset.clickBound = "true";
      div.on("plotly_click", (event) => {
        const point = event && event.points && event.points[0];
        if (!point || !point.customdata) return;
        select(String(point.y), point.customdata[6]);
      });
    }
  }

  // ---- keyboard access: a chooser and the list of flagged cells ----------------------------
  function drawChooser(data, cell) {
    let card = document.getElementById("card-drift-cells");
    if (!card) {
      card = el("section", { class: "card chart-card wide", id: "card-drift-cells", "aria-labelledby": "title-drift-cells" },
        el("h2", { id: "title-drift-cells" }, "Cells that drifted or warned"),
        el("p", { class: "help" }, "The heat-map's flagged cells as a list, worst first. Open any cell's histogram from its link, or pick a feature and a window."),
        el("form", { class: "filters cell-chooser", id: "cell-chooser" },
          el("label", { for: "cell-feature" }, "Feature"),
          el("select", { id: "cell-feature" }),
          el("label", { for: "cell-window" }, "Window"),
          el("select", { id: "cell-window" }),
          el("button", { type: "submit", class: "secondary" }, "Show histogram"),
        ),
        el("div", { id: "flagged-cells", class: "table-scroll" }),
      );
      card.querySelector("form").addEventListener("submit", (event) => {
        event.preventDefault();
        select(document.getElementById("cell-feature").value, document.getElementById("cell-window").value);
      });
      document.getElementById("panel").append(card);
    }
    const featureSelect = document.getElementById("cell-feature");
    const windowSelect = document.getElementById("cell-window");
    const features = data.features.map((f) => f.feature);
    if (featureSelect.dataset.options !== JSON.stringify(features)) {
      featureSelect.replaceChildren(...features.map((f) => el("option", { value: f }, f)));
      featureSelect.dataset.options = JSON.stringify(features);
    }
    const windows = [...data.windows].reverse(); // newest first
    if (windowSelect.dataset.options !== JSON.stringify(windows)) {
      windowSelect.replaceChildren(...windows.map((w) => el("option", { value: w }, windowLabel(w))));
      windowSelect.dataset.options = JSON.stringify(windows);
    }
    if (cell && features.includes(cell.feature)) featureSelect.value = cell.feature;
    if (cell && windows.includes(cell.start)) windowSelect.value = cell.start;

    const flagged = [];
    for (const f of data.features) {
      f.severity.forEach((s, i) => {
        if (s === "drift" || s === "warn") flagged.push({ f, i, ratio: f.statistic[i] / f.threshold });
      });
    }
    flagged.sort((a, b) => (a.f.severity[a.i] === b.f.severity[b.i] ? b.ratio - a.ratio : a.f.severity[a.i] === "drift" ? -1 : 1));
    const shown = flagged.slice(0, 50);
    const key = JSON.stringify(shown.map(({ f, i }) => [f.feature, data.windows[i], f.statistic[i]]));
    const box = document.getElementById("flagged-cells");
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    if (!shown.length) {
      const judged = data.features.some((f) => f.severity.some((s) => s !== "insufficient"));
      box.replaceChildren(el("p", { class: "help" }, judged
        ? "No feature drifted or warned in any window of this range."
        : "No window of this range holds enough values to judge drift (grey cells); pick a longer range or larger windows."));
      return;
    }
    const rows = shown.map(({ f, i, ratio }) => {
      const start = data.windows[i];
      const link = el("a", { href: WK.urlWith({ cell: cellParam(f.feature, start) }) }, f.feature);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        select(f.feature, start);
      });
      return el("tr", { dataset: { feature: f.feature, window: start } },
        el("th", { scope: "row" }, link),
        el("td", { class: "when" }, windowLabel(start)),
        el("td", {}, f.method),
        el("td", { class: "num" }, fmt.number(f.statistic[i], 4)),
        el("td", { class: "num" }, fmt.number(f.threshold, 2)),
        el("td", { class: "num" }, fmt.number(ratio, 2)),
        el("td", {}, SEVERITY_TEXT[f.severity[i]]),
        el("td", { class: "num" }, fmt.int(f.n[i])),
      );
    });
    box.replaceChildren(
      el("table", { class: "data", id: "flagged-table" },
        el("caption", { class: "visually-hidden" }, "Cells that drifted or warned, worst first"),
        el("thead", {}, el("tr", {},
          ...["Feature", "Window (UTC)", "Method", "Statistic", "Threshold", "÷ threshold", "Severity", "n"].map((h, j) =>
            el("th", { scope: "col", class: j >= 3 && j !== 6 ? "num" : null }, h)),
        )),
        el("tbody", {}, rows),
      ),
    );
    if (flagged.length > shown.length) box.append(el("p", { class: "help" }, `Showing the worst ${shown.length} of ${flagged.length} flagged cells.`));
  }

  // ---- the histogram of the chosen cell -----------------------------------------------------
  function histogramCard() {
    let card = document.getElementById("card-drift-histogram");
    if (!card) {
      const close = el("button", { type: "button", class: "secondary small", id: "close-histogram" }, "Close");
      close.addEventListener("click", () => {
        WK.setParam("cell", null);
        histogramKey = null;
        card.remove();
        if (timeline) drawHeatmap(timeline, null);
      });
      card = el("section", { class: "card chart-card wide", id: "card-drift-histogram", "aria-labelledby": "title-drift-histogram", "aria-live": "polite" },
        el("div", { class: "row-actions" }, el("h2", { id: "title-drift-histogram" }, "Histogram"), close),
        el("p", { class: "help", id: "histogram-window" }),
        el("div", { class: "stat-row", id: "histogram-stats" }),
        el("div", { class: "plot", id: "plot-drift-histogram", role: "img", "aria-label": "Reference and window shares per bin" }),
      );
      const heat = document.getElementById("card-drift-heatmap");
      if (heat) heat.after(card);
      else document.getElementById("panel").append(card);
    }
    return card;
  }

  function stat(label, value, id) {
    return el("div", { class: "stat", dataset: { stat: id } }, el("span", { class: "label" }, label), el("span", { class: "value" }, value));
  }

  let latest = 0; // a click may overtake a refresh: only the newest answer draws

  async function showSelected() {
    const seq = ++latest;
    const cell = readCell();
    if (timeline) drawHeatmap(timeline, cell);
    if (!cell) {
      const old = document.getElementById("card-drift-histogram");
      if (old) old.remove();
      histogramKey = null;
      return;
    }
    const seconds = timeline ? timeline.window_seconds : WK.WINDOW_MS[WK.ctx.heatWindow] / 1000;
    const end = iso(Date.parse(cell.start) + seconds * 1000);
    const url = WK.ctx.api("drift", { start: cell.start, end, features: cell.feature, multivariate: "false" });
    const data = await WK.get(url);
    if (seq !== latest || !readCell()) return;
    const result = (data.features || [])[0];
    const card = histogramCard();
    card.dataset.feature = cell.feature;
    card.dataset.window = cell.start;
    document.getElementById("title-drift-histogram").textContent = `${cell.feature}: reference vs. window`;
    document.getElementById("histogram-window").textContent =
      `Window ${fmt.time(cell.start)} – ${fmt.time(end)}` + (WK.ctx.version ? `, version ${WK.ctx.version}` : "") +
      (WK.ctx.segment ? `, segment ${WK.ctx.segment.replace(":", " = ")}` : "") + ". Bars: share of values in each bin.";
    const key = JSON.stringify([cell, result]);
    if (key === histogramKey) return;
    histogramKey = key;
    const stats = document.getElementById("histogram-stats");
    const plotDiv = document.getElementById("plot-drift-histogram");
    if (!result) {
      stats.replaceChildren(el("p", { class: "help" }, `No drift result for ${cell.feature} (unknown feature: ${(data.unknown_features || []).join(", ") || "none"}).`));
      plotDiv.hidden = true;
      return;
    }
    plotDiv.hidden = false;
    const sev = el("span", { class: `badge ${SEVERITY_BADGE[result.severity] || ""}` }, SEVERITY_TEXT[result.severity] || result.severity);
    stats.replaceChildren(
      stat("Method", result.method, "method"),
      stat("Statistic", fmt.number(result.statistic, 4), "statistic"),
      stat("Thresholds (warn / drift)", `${fmt.number(result.warn_threshold, 2)} / ${fmt.number(result.threshold, 2)}`, "threshold"),
      el("div", { class: "stat", dataset: { stat: "severity" } }, el("span", { class: "label" }, "Severity"), el("span", { class: "value" }, sev)),
      stat("p-value (adjusted)", `${pval(result.p_value)} (${pval(result.p_adjusted)})`, "p_value"),
      stat("n (window / reference)", `${fmt.int(result.n_current)} / ${fmt.int(result.n_reference)}`, "n"),
    );
    const h = result.histogram || { labels: [], reference: [], current: [] };
    const pct = (xs) => xs.map((v) => (v === null ? null : v * 100));
    WK.plot(plotDiv, [
      { type: "bar", name: "reference", x: h.labels, y: pct(h.reference), marker: { color: "#8c959f" }, hovertemplate: "%{x}<br>reference: %{y:.2f} %<extra></extra>" },
      { type: "bar", name: "window", x: h.labels, y: pct(h.current), marker: { color: WK.COLORS[0], pattern: { shape: "/" } }, hovertemplate: "%{x}<br>window: %{y:.2f} %<extra></extra>" },
    ], {
      barmode: "group",
      hovermode: "closest",
      height: 340,
      xaxis: { type: "category", title: { text: result.kind === "number" ? "bin" : "category" }, range: undefined, tickangle: -30 },
      yaxis: { title: { text: "% of values" } },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      margin: { l: 64, r: 24, t: 28, b: 90 },
    });
  }

  function pval(p) {
    if (typeof p !== "number") return fmt.none;
    if (p === 0) return "< 1e-300"; // below double precision
    return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
  }

  // ---- no reference -------------------------------------------------------------------------
  function showNoReference(message) {
    const panel = document.getElementById("panel");
    if (document.getElementById("card-no-reference")) return;
    panel.replaceChildren(
      el("section", { class: "card wide", id: "card-no-reference", "aria-labelledby": "title-no-reference" },
        el("h2", { id: "title-no-reference" }, "No reference to compare with"),
        el("p", {}, "Drift compares live traffic with a reference: the training data, or a window of the model's own traffic."),
        el("p", { class: "notice notice-info" }, message),
        el("p", { class: "help" }, "For example, with an ingest key: ",
          el("code", {}, `curl -X PUT -H "Authorization: Bearer $KEY" -H "Content-Type: text/csv" --data-binary @train.csv ${location.origin}/api/v1/models/${encodeURIComponent(WK.ctx.model)}/reference`)),
      ),
    );
    timeline = null;
  }

  WK.onRefresh(async (ctx) => {
    // The model page already knows whether a reference exists: no request bound to fail.
    const versions = (ctx.detail && ctx.detail.versions) || [];
    if (versions.length && !versions.some((v) => v.has_reference)) {
      const m = encodeURIComponent(ctx.model);
      showNoReference(`model '${ctx.model}' has no reference profile: upload one with PUT /api/v1/models/${m}/reference, ` +
        `or pin a window of its traffic with POST /api/v1/models/${m}/reference/pin`);
      return;
    }
    let data;
    try {
      data = await WK.get(ctx.api("drift/timeline", { window: ctx.heatWindow }));
    } catch (err) {
      if (err instanceof WK.ApiError && err.status === 409) {
        showNoReference((err.body && err.body.error && err.body.error.message) || err.message);
        return;
      }
      throw err;
    }
    for (const id of ["card-no-reference", "card-no-features"]) {
      const old = document.getElementById(id);
      if (old) old.remove();
    }
    timeline = data;
    const cell = readCell();
    if (!data.features.length) {
      document.getElementById("panel").replaceChildren(el("section", { class: "card wide", id: "card-no-features" },
        el("h2", {}, "No features to compare"), el("p", {}, "The reference has no features the traffic shares.")));
      return;
    }
    drawHeatmap(data, cell);
    drawChooser(data, cell);
    await showSelected();
  });
})();
