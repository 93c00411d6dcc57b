// Segments tab: one metric broken down by a chosen segment (`by`, in the URL), worst values
// first — direction aware (lower accuracy is worse, higher error rate or latency is worse) —
// with each value's difference to the whole model over the same range, a bar chart of the
// same, and links to the Operations tab filtered to each value.
"use strict";

(() => {
  const { el, fmt } = WK;
  // worse: which way is bad ("higher", "lower", or null: traffic, ranked busiest first)
  const METRICS = {
    error_rate: { label: "Error rate", worse: "higher", show: (v) => fmt.pct(v, 2), scale: 100, unit: "%", diffUnit: "pp", digits: 2 },
    latency_p95: { label: "Latency p95", worse: "higher", show: (v) => fmt.ms(v), scale: 1, unit: "ms", diffUnit: "ms", digits: 1 },
    accuracy: { label: "Accuracy", worse: "lower", show: (v) => fmt.pct(v, 1), scale: 100, unit: "%", diffUnit: "pp", digits: 2, task: "classification" },
    mae: { label: "MAE", worse: "higher", show: (v) => fmt.number(v, 2), scale: 1, unit: "target units", diffUnit: "", digits: 2, task: "regression" },
    throughput: { label: "Throughput", worse: null, show: (v) => (v === null ? fmt.none : `${fmt.number(v, 2)} /s`), scale: 1, unit: "events/s", diffUnit: "/s", digits: 2 },
    count: { label: "Events", worse: null, show: (v) => fmt.int(v), scale: 1, unit: "events", diffUnit: "", digits: 0 },
  };
  const DEFAULT_METRIC = "error_rate";

  function metricsFor(task) {
    return Object.keys(METRICS).filter((m) => !METRICS[m].task || METRICS[m].task === task);
  }

  function controls(ctx, names) {
    let card = document.getElementById("card-segments-controls");
    if (card) return card;
    const bySelect = el("select", { id: "segments-by", name: "by" });
    const metricSelect = el("select", { id: "segments-metric", name: "metric" });
    card = el("section", { class: "card wide", id: "card-segments-controls", "aria-label": "Breakdown" },
      el("form", { class: "filters", id: "segments-form" },
        el("label", { for: "segments-by" }, "Break down by"), bySelect,
        el("label", { for: "segments-metric" }, "Metric"), metricSelect,
      ),
      el("p", { class: "help", id: "segments-note" }),
    );
    bySelect.replaceChildren(...(ctx.detail.segments || []).map((s) => el("option", { value: s }, s)));
    metricSelect.replaceChildren(...names.map((m) => el("option", { value: m }, METRICS[m].label)));
    for (const [select, param] of [[bySelect, "by"], [metricSelect, "metric"]]) {
      select.addEventListener("change", () => {
        WK.setParam(param, select.value);
        render(WK.ctx).catch(WK.showError);
      });
    }
    card.querySelector("form").addEventListener("submit", (event) => event.preventDefault());
    document.getElementById("panel").append(card);
    return card;
  }

  // Worst first: by the metric in its bad direction; traffic metrics busiest first; values
  // without a number (e.g. no labels yet) last.
  function rank(values, metric) {
    const info = METRICS[metric];
    const sign = info.worse === "lower" ? 1 : -1;
    return [...values].sort((a, b) => {
      const x = a.metrics[metric];
      const y = b.metrics[metric];
      if (x === null && y === null) return b.metrics.count - a.metrics.count;
      if (x === null) return 1;
      if (y === null) return -1;
      return x === y ? b.metrics.count - a.metrics.count : sign * (x - y);
    });
  }

  function difference(value, overall, metric) {
    const info = METRICS[metric];
    if (value === null || overall === null || value === undefined || overall === undefined) return { text: fmt.none, cls: "" };
    const d = (value - overall) * info.scale;
    const shown = `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(info.digits)}${info.diffUnit ? " " + info.diffUnit : ""}`;
    if (!info.worse || Math.abs(d) < 10 ** -info.digits / 2) return { text: shown, cls: "" };
    const worse = info.worse === "higher" ? d > 0 : d < 0;
    return { text: `${shown} ${worse ? "▲ worse" : "▽ better"}`, cls: worse ? "worse" : "better" };
  }

  function operationsLink(ctx, by, value) {
    const path = `/models/${encodeURIComponent(ctx.model)}/operations`;
    return WK.urlWith({ segment: `${by}:${value}`, by: null, metric: null, cell: null }, path);
  }

  function drawTable(ctx, data, metric, ranked) {
    let card = document.getElementById("card-segments-table");
    if (!card) {
      card = el("section", { class: "card chart-card", id: "card-segments-table", "aria-labelledby": "title-segments-table" },
        el("h2", { id: "title-segments-table" }),
        el("p", { class: "help", id: "segments-table-help" }),
        el("div", { class: "table-scroll", id: "segments-table-box" }),
      );
      const chart = document.getElementById("card-segments-chart");
      if (chart) chart.before(card);
      else document.getElementById("panel").append(card);
    }
    const info = METRICS[metric];
    document.getElementById("title-segments-table").textContent = `${info.label} by ${data.by}`;
    document.getElementById("segments-table-help").textContent =
      (info.worse
        ? `Worst first (${info.worse} is worse). Δ: the difference to all traffic over the same range (${info.show(data.overall[metric])}). `
        : "Busiest first, with each value's share of all traffic. ") +
      "Each value opens the Operations tab filtered to it.";
    const key = JSON.stringify([metric, ranked, data.overall]);
    const share = info.worse === null; // traffic: each value's share of it, not a difference
    const box = document.getElementById("segments-table-box");
    if (box.dataset.key === key) return;
    box.dataset.key = key;
    if (!ranked.length) {
      box.replaceChildren(el("p", { class: "help" }, `No traffic with segment ${data.by} in this range.`));
      return;
    }
    const rows = ranked.map((row, i) => {
      const value = row.metrics[metric];
      const diff = share
        ? { text: data.overall[metric] ? fmt.pct(value / data.overall[metric]) : fmt.none, cls: "" }
        : difference(value, data.overall[metric], metric);
      return el("tr", { dataset: { value: row.value } },
        el("td", { class: "num" }, String(i + 1)),
        el("th", { scope: "row" }, el("a", { href: operationsLink(ctx, data.by, row.value), "aria-label": `${data.by} = ${row.value}: operations` }, row.value)),
        el("td", { class: "num", dataset: { col: "count", value: String(row.metrics.count) } }, fmt.int(row.metrics.count)),
        metric === "count" ? null : el("td", { class: "num", dataset: { col: "metric", value: value === null ? "" : String(value) } }, info.show(value)),
        el("td", { class: `num ${diff.cls}`, dataset: { col: "diff" } }, diff.text),
      );
    });
    box.replaceChildren(
      el("table", { class: "data", id: "segments-table" },
        el("caption", { class: "visually-hidden" }, `${info.label} per value of ${data.by}, worst first`),
        el("thead", {}, el("tr", {},
          el("th", { scope: "col", class: "num" }, "#"),
          el("th", { scope: "col" }, data.by),
          el("th", { scope: "col", class: "num" }, "Events"),
          metric === "count" ? null : el("th", { scope: "col", class: "num" }, info.label),
          el("th", { scope: "col", class: "num" }, share ? "Share of all" : "Δ to all"),
        )),
        el("tbody", {}, rows),
        el("tfoot", {}, el("tr", {},
          el("td", {}),
          el("th", { scope: "row" }, "All traffic"),
          el("td", { class: "num" }, fmt.int(data.overall.count)),
          metric === "count" ? null : el("td", { class: "num" }, info.show(data.overall[metric])),
          el("td", {}),
        )),
      ),
    );
    if (data.truncated) box.append(el("p", { class: "help" }, `Showing the ${data.values.length} values with the most traffic.`));
  }

  // Differences to the whole model, diverging from zero, so small gaps stay visible; traffic
  // metrics (no better or worse) are drawn as plain magnitudes.
  function drawChart(data, metric, ranked) {
    const info = METRICS[metric];
    const overall = data.overall[metric];
    const diverging = info.worse !== null && overall !== null && overall !== undefined;
    const div = WK.chartCard("segments-chart", "Chart", "…");
    div.closest(".card").querySelector(".help").textContent = diverging
      ? `Bars: each value's ${info.label.toLowerCase()} minus all traffic's (${info.show(overall)}); red hatched bars are worse.`
      : "Bars: each value's traffic over the range.";
    const title = diverging
      ? `${info.label} by ${data.by}: difference to all traffic, worst at the top`
      : `${info.label} by ${data.by}, busiest at the top`;
    div.closest(".card").querySelector("h2").textContent = title;
    div.setAttribute("aria-label", `Bar chart of ${info.label} per value of ${data.by}; the same numbers are in the table`);
    const shown = ranked.filter((r) => r.metrics[metric] !== null);
    // Tick labels carry the value itself; the bars its difference to all traffic.
    const y = shown.map((r) => (diverging ? `${r.value} (${info.show(r.metrics[metric])})` : r.value));
    const x = shown.map((r) => (diverging ? (r.metrics[metric] - overall) : r.metrics[metric]) * info.scale);
    const diffs = shown.map((r) => difference(r.metrics[metric], overall, metric));
    const text = shown.map((r, i) => (diverging ? diffs[i].text.replace(/ [▲▽] (worse|better)$/, "") : info.show(r.metrics[metric])));
    // room for the labels outside the bars; never narrower than the shown precision
    const reach = Math.max(...x.map(Math.abs), 5 * 10 ** -info.digits) * 1.6;
    WK.plot(div, [{
      type: "bar",
      orientation: "h",
      x,
      y,
      name: info.label,
      marker: {
        color: diffs.map((d) => (d.cls === "worse" ? "#cf222e" : WK.COLORS[0])),
        pattern: { shape: diffs.map((d) => (d.cls === "worse" ? "/" : "")) },
      },
      text,
      textposition: "outside",
      cliponaxis: false,
      textfont: { size: 12 },
      hovertemplate: diverging ? "%{y}: %{text} to all traffic<extra></extra>" : "%{y}: %{text}<extra></extra>",
    }], {
      height: Math.max(220, shown.length * 34 + 90),
      hovermode: "closest",
      showlegend: false,
      margin: { l: 100, r: 24, t: 16, b: 48 },
      xaxis: {
        type: "linear", autorange: !diverging, range: diverging ? [-reach, reach] : undefined, hoverformat: "", automargin: true,
        zeroline: true, zerolinecolor: "#1b1f24", zerolinewidth: 2,
        title: { text: diverging ? `${info.label} − all traffic (${info.diffUnit || info.unit})` : info.unit },
        rangemode: diverging ? "normal" : "tozero",
      },
      yaxis: { type: "category", autorange: "reversed", automargin: true },
    });
  }

  let latest = 0; // a change of choice may overtake a refresh: only the newest answer draws

  async function render(ctx) {
    const seq = ++latest;
    const segments = (ctx.detail && ctx.detail.segments) || [];
    if (!segments.length) {
      if (!document.getElementById("card-no-segments")) {
        document.getElementById("panel").replaceChildren(el("section", { class: "card wide", id: "card-no-segments" },
          el("h2", {}, "No segments yet"),
          el("p", {}, "This model's events carry no segments. Send them with each prediction, e.g. ",
            el("code", {}, '"segments": {"region": "eu"}'), ", to compare metrics across them here.")));
      }
      return;
    }
    const names = metricsFor(ctx.detail.task);
    const card = controls(ctx, names);
    let by = ctx.params.get("by");
    if (!segments.includes(by)) by = segments[0];
    let metric = ctx.params.get("metric");
    if (!names.includes(metric)) metric = DEFAULT_METRIC;
    card.querySelector("#segments-by").value = by;
    card.querySelector("#segments-metric").value = metric;
    document.getElementById("segments-note").textContent = ctx.segment
      ? `The segment filter (${ctx.segment.replace(":", " = ")}) does not apply here: this tab compares every value of one segment.`
      : "Compare one metric across the values of a segment over the chosen range.";

    const query = { by, names: ["count", metric].filter((v, i, a) => a.indexOf(v) === i).join(","), limit: 50 };
    if (ctx.version) query.version = ctx.version;
    const data = await WK.get(ctx.api("segments", query, { filters: false }));
    if (seq !== latest) return;
    const ranked = rank(data.values, metric);
    drawTable(ctx, data, metric, ranked);
    drawChart(data, metric, ranked);
  }

  WK.onRefresh(render);
})();
