// Quality tab: the model's quality metrics over time (classification: accuracy, precision,
// recall, F1, ROC AUC; regression: MAE, RMSE, R²) with label coverage beside them, range
// totals as tiles, and monitor thresholds/bands on the charts (wk-monitors.js). Labels
// arrive late, so the tab says plainly when there are none yet.
"use strict";

(() => {
  const COVERAGE = ["count", "labeled_count", "label_coverage"];
  const TASKS = {
    classification: {
      charts: [
        {
          id: "quality", title: "Classification quality",
          help: "Accuracy, precision, recall and F1 of the labelled events of each window; ROC AUC from their scores. Precision, recall and F1 are for the positive class \"1\" (macro averages with other labels).",
          axis: "score (0–1)",
          wide: true,
          metrics: [["accuracy", "accuracy"], ["precision", "precision"], ["recall", "recall"], ["f1", "F1"], ["roc_auc", "ROC AUC"]],
          layout: { yaxis: { range: [0, 1.02], hoverformat: ".3f" } },
          format: (v) => WK.fmt.number(v, 3),
        },
      ],
      tiles: [["accuracy", "Accuracy", (v) => WK.fmt.pct(v, 1)], ["f1", "F1", (v) => WK.fmt.number(v, 3)], ["roc_auc", "ROC AUC", (v) => WK.fmt.number(v, 3)],
        ["precision", "Precision", (v) => WK.fmt.number(v, 3)], ["recall", "Recall", (v) => WK.fmt.number(v, 3)]],
    },
    regression: {
      charts: [
        {
          id: "errors", title: "Prediction error",
          help: "Mean absolute error and root mean squared error of the labelled events of each window, in the label's unit (lower is better).",
          axis: "error (label unit)",
          metrics: [["mae", "MAE"], ["rmse", "RMSE"]],
          layout: { yaxis: { hoverformat: ".3f" } },
          format: (v) => WK.fmt.number(v, 3),
        },
        {
          id: "r2", title: "R² (coefficient of determination)",
          help: "1 is a perfect fit, 0 no better than predicting the mean; below 0 worse than that.",
          axis: "R²",
          metrics: [["r2", "R²"]],
          layout: { yaxis: { rangemode: "normal", hoverformat: ".3f" } },
          format: (v) => WK.fmt.number(v, 3),
        },
      ],
      tiles: [["mae", "MAE", (v) => WK.fmt.number(v, 3)], ["rmse", "RMSE", (v) => WK.fmt.number(v, 3)], ["r2", "R²", (v) => WK.fmt.number(v, 3)]],
    },
  };
  const line = (x, y, name, style = {}) => ({ x, y, name, type: "scatter", mode: "lines+markers", connectgaps: false, marker: { size: 4 }, line: { width: 2, ...style } });

  const tiles = WK.tiles;

  // A notice card (e.g. "no labels yet"); hidden when text is null. Kept in place.
  function notice(id, heading, body) {
    let node = document.getElementById(`card-${id}`);
    if (!body) {
      if (node) node.hidden = true;
      return;
    }
    if (!node) {
      node = WK.el("section", { class: "card wide notice-card", id: `card-${id}`, role: "note", "aria-labelledby": `title-${id}` },
        WK.el("h2", { id: `title-${id}` }), WK.el("div", { class: "body" }));
      const panel = document.getElementById("panel");
      panel.insertBefore(node, panel.children[1] || null); // right after the tiles
    }
    node.hidden = false;
    node.querySelector("h2").textContent = heading;
    const key = JSON.stringify(body);
    const box = node.querySelector(".body");
    if (box.dataset.key !== key) {
      box.dataset.key = key;
      box.replaceChildren(...body.map((p) => WK.el("p", { class: p.code ? "help" : null },
        p.code ? WK.el("code", {}, p.code) : p.text,
        p.link ? WK.el("a", { href: WK.urlWith({}, p.link[1]) }, p.link[0]) : null,
        p.link ? "." : null)));
    }
  }

  const annotated = WK.noData;


  // "The last 3 windows have no labels yet" — recent windows with events but no labels.
  function lateLabels(x, m, ctx) {
    let n = 0;
    let first = null;
    for (let i = x.length - 1; i >= 0; i--) {
      if (!(m.count[i] > 0)) continue; // windows without events say nothing about labels
      if (m.labeled_count[i] > 0) break;
      n += 1;
      first = i;
    }
    if (!n || !m.labeled_count.some((v) => v > 0)) return "";
    const since = x[first];
    const what = n > 1 ? `The last ${n} ${ctx.sampleWindow} windows (since ${WK.fmt.time(since)}) have` : `The last ${ctx.sampleWindow} window (since ${WK.fmt.time(since)}) has`;
    return `${what} events but no labels yet: labels arrive late, so quality there is not known yet.`;
  }

  WK.onRefresh(async (ctx) => {
    const task = ctx.detail && ctx.detail.task;
    const spec = TASKS[task];
    const model = ctx.model;
    if (!spec) {
      notice("no-quality", "No quality metrics for this model",
        [task === "llm"
          ? { text: "Quality metrics compare predictions with ground truth, which LLM models rarely have. Tokens, cost and time to first token are on the ", link: ["LLM tab", `/models/${encodeURIComponent(model)}/llm`] }
          : { text: "Quality metrics need a classification or regression model: its task is set by its first events (scores or 0/1 predictions: classification; other numbers: regression) or by ?task= on the predictions route." }]);
      return;
    }
    const names = [...new Set([...spec.charts.flatMap((c) => c.metrics.map(([n]) => n)), ...COVERAGE])];
    const [data, all] = await Promise.all([
      WK.get(ctx.api("metrics", { names: names.join(","), window: ctx.sampleWindow })),
      WK.get(ctx.api("metrics", { names: names.join(","), window: "all" })),
    ]);
    const total = Object.fromEntries(names.map((n) => [n, all.metrics[n][0]]));
    tiles("totals", "Over the whole range", [
      ...spec.tiles.map(([key, label, f]) => [key, label, f(total[key]), total[key], total.labeled_count ? "" : "no labels yet"]),
      ["label_coverage", "Label coverage", WK.fmt.pct(total.label_coverage, 1), total.label_coverage,
        `${WK.fmt.int(total.labeled_count)} of ${WK.fmt.int(total.count)} events labelled`],
    ]);

    const noLabels = total.count > 0 && !total.labeled_count;
    notice("no-labels", "No labels yet",
      noLabels
        ? [
          { text: `None of the ${WK.fmt.int(total.count)} events in this range has ground truth yet, so quality cannot be computed. Labels usually arrive later than predictions (minutes to weeks); the charts fill in as they arrive.` },
          { text: "Send them by event id with the SDK (monitor.log_actual(event_id, label)) or the API:" },
          { code: `POST /api/v1/models/${model}/actuals  {"actuals": [{"event_id": "…", "label": 1}]}` },
        ]
        : null);

    const x = data.windows;
    const m = data.metrics;
    const late = lateLabels(x, m, ctx);
    const emptyText = !total.count ? "No events in this range" : noLabels ? "No labels yet" : "";
    for (const chart of spec.charts) {
      const overlays = (await Promise.all(chart.metrics.map(([n, label]) => WK.monitorOverlays(n, { label, format: chart.format })))).flat();
      const div = WK.chartCard(chart.id, chart.title, chart.help);
      if (chart.wide) div.closest(".card").classList.add("wide");
      setLate(div, late);
      WK.plot(div, [
        ...chart.metrics.map(([n, label], i) => ({
          ...line(x, m[n], label, { dash: ["solid", "dot", "dash", "dashdot", "longdash"][i % 5] }),
          customdata: m.labeled_count,
          hovertemplate: `${label}: %{y:.3f} (%{customdata} labelled)<extra></extra>`,
        })),
        ...fewLabels(x, m, chart.metrics.map(([n]) => n)),
        ...overlays,
      ], annotated({ ...chart.layout, yaxis: { title: { text: chart.axis }, ...chart.layout.yaxis } }, emptyText));
    }

    const coverageOverlays = (await Promise.all([
      WK.monitorOverlays("label_coverage", { label: "label coverage", format: (v) => WK.fmt.pct(v, 1), yaxis: "y2" }),
      WK.monitorOverlays("labeled_count", { label: "labelled events" }),
    ])).flat();
    const cov = WK.chartCard("coverage", "Labels received",
      `Bars: events of each ${ctx.sampleWindow} window that have ground truth (left axis). Line: their share of the window's events (right axis). Recent windows fill in as late labels arrive.`);
    cov.closest(".card").classList.add("wide");
    WK.plot(cov, [
      { x, y: m.labeled_count, name: "labelled events", type: "bar", marker: { color: "#93c5fd" } },
      { ...line(x, m.label_coverage, "label coverage", { color: WK.COLORS[2] }), yaxis: "y2" },
      ...coverageOverlays,
    ], annotated({
      // whole events: no 0.2-event ticks when few (or no) labels arrived
      yaxis: { title: { text: "labelled events" }, ...(Math.max(0, ...m.labeled_count) < 5 ? { dtick: 1, range: [0, 5] } : {}) },
      yaxis2: { title: { text: "label coverage" }, overlaying: "y", side: "right", range: [0, 1.02], dtick: 0.25, tickformat: ".0%", hoverformat: ".1%", showgrid: false, automargin: true },
      margin: { l: 64, r: 64, t: 28, b: 40 },
      bargap: 0.15,
    }, !total.count ? "No events in this range" : noLabels ? "No labels yet" : ""));
  });

  // Windows with only a few labels give noisy values (one wrong answer in five is 20 %):
  // ring them so a dip there is read with care. The data traces stay exactly the API's.
  const FEW = 20;
  function fewLabels(x, m, names) {
    const xs = [];
    const ys = [];
    const ns = [];
    for (let i = 0; i < x.length; i++) {
      const n = m.labeled_count[i];
      if (!(n > 0 && n < FEW)) continue;
      for (const name of names) {
        if (typeof m[name][i] !== "number") continue;
        xs.push(x[i]);
        ys.push(m[name][i]);
        ns.push(n);
      }
    }
    if (!xs.length) return [];
    return [{
      x: xs, y: ys, customdata: ns, name: `fewer than ${FEW} labels: noisy`, type: "scatter", mode: "markers",
      marker: { symbol: "circle-open", size: 11, color: "#57606a", line: { width: 1.5 } },
      hovertemplate: "only %{customdata} labelled<extra></extra>", meta: { kind: "few_labels" },
    }];
  }

  function setLate(div, text) {
    const cardNode = div.closest(".card");
    let p = cardNode.querySelector(".late-labels");
    if (!p) {
      p = WK.el("p", { class: "help late-labels" });
      cardNode.insertBefore(p, div);
    }
    p.textContent = text;
    p.hidden = !text;
  }
})();
