// Data quality tab: missing values, out-of-range numbers and unseen categories per feature
// over time, duplicates and rejected batches, and a table of the worst features over the
// range (GET /api/v1/models/{m}/data-quality). Monitor thresholds on the charts come from
// wk-monitors.js. Without a reference the API answers 409 no_reference: the tab shows its
// message (how to add one) instead of charts.
"use strict";

(() => {
  const TOP = 8; // features drawn per chart: the worst ones
  const TABLE_ROWS = 15;
  const RATES = [
    ["missing_rate", "Missing"],
    ["missing_change", "Missing vs reference"],
    ["out_of_range_rate", "Out of range"],
    ["unseen_rate", "Unseen categories"],
    ["invalid_rate", "Invalid (NaN, ±inf)"],
  ];
  // Shares with two decimals; a share too small for them still shows it is not zero.
  const pct = (v) => (typeof v === "number" && v !== 0 && Math.abs(v) < 0.00005 ? `${v < 0 ? "> −" : "< "}0.01 %` : WK.fmt.pct(v, 2));
  const signedPct = (v) => {
    if (typeof v !== "number") return WK.fmt.none;
    if (v !== 0 && Math.abs(v) < 0.00005) return v > 0 ? "< +0.01 %" : "> −0.01 %";
    return (v > 0 ? "+" : "") + pct(v);
  };

  const section = WK.section;
  const tiles = (items) => WK.tiles("totals", "Over the whole range", items);

  const annotated = WK.noData;


  // The features with the highest peak of `metric` over the windows (only those above 0),
  // plus any feature a monitor watches with that metric (its threshold is drawn).
  function worst(windows, names, metric, watched) {
    const peaks = names.map((name) => {
      let peak = null;
      for (const w of windows) {
        const v = w.features[name] ? w.features[name][metric] : null;
        if (typeof v === "number" && (peak === null || v > peak)) peak = v;
      }
      return [name, peak];
    });
    const applicable = peaks.filter(([, p]) => p !== null);
    const nonzero = applicable.filter(([, p]) => p > 0).sort((a, b) => b[1] - a[1]);
    const shown = nonzero.slice(0, TOP).map(([n]) => n);
    for (const [name] of applicable) if (watched.has(name) && !shown.includes(name)) shown.push(name);
    return { shown, applicable: applicable.length, nonzero: nonzero.length };
  }

  async function featureChart(ctx, dq, names, metric, id, title, help, emptyText) {
    const x = dq.windows.map((w) => w.start);
    const monitors = await WK.monitorList();
    const watched = new Set(monitors.filter((m) => m.metric.startsWith(`${metric}:`)).map((m) => m.metric.slice(metric.length + 1)));
    const pick = worst(dq.windows, names, metric, watched);
    const more = pick.nonzero > TOP ? ` Showing the ${TOP} worst of ${pick.nonzero} features above 0${pick.shown.length > TOP ? " and those a monitor watches" : ""}.` : "";
    const div = WK.chartCard(id, title, help);
    div.closest(".card").classList.add("wide"); // room for a legend of up to 8 features and thresholds
    const note = div.closest(".card").querySelector(".help");
    if (note) note.textContent = help + more;
    const overlays = (await Promise.all(pick.shown.map((f) =>
      WK.monitorOverlays(`${metric}:${f}`, { label: `${title.toLowerCase()} of ${f}`, format: pct })))).flat();
    const traces = pick.shown.map((f) => ({
      x, y: dq.windows.map((w) => (w.features[f] ? w.features[f][metric] : null)),
      name: f, type: "scatter", mode: "lines", connectgaps: false, line: { width: 2 },
      meta: { feature: f, metric },
    }));
    let empty = "";
    if (!pick.applicable) empty = emptyText.none;
    else if (!pick.nonzero) empty = emptyText.zero.replace("{n}", String(pick.applicable));
    WK.plot(div, [...traces, ...overlays], annotated({
      showlegend: true,
      height: 340,
      // nothing above 0: a 0–1 % axis, not Plotly's empty default (which reads as 0–400 %)
      yaxis: { title: { text: "share of rows" }, tickformat: ".2~%", hoverformat: ".2%", ...(pick.nonzero ? {} : { range: [0, 0.01] }) },
    }, empty));
  }

  function worstTable(dqAll, kinds) {
    const node = section("worst", "Worst features over the range", "wide");
    if (!node.querySelector("table")) {
      node.append(
        WK.el("p", { class: "help" }, "Shares of each feature's rows over the whole range, worst first (the highest of its rates). Missing vs reference is the change of the missing rate against the reference data set."),
        WK.el("div", { class: "table-wrap" }, WK.el("table", { class: "data", id: "worst-features" },
          WK.el("thead", {}, WK.el("tr", {},
            WK.el("th", { scope: "col" }, "Feature"), WK.el("th", { scope: "col" }, "Type"),
            RATES.map(([, label]) => WK.el("th", { scope: "col", class: "num" }, label)),
            WK.el("th", { scope: "col" }, "Flags"))),
          WK.el("tbody"))),
        WK.el("p", { class: "help table-note" }),
      );
    }
    const window = dqAll.windows[0] || { features: {} };
    const rows = Object.entries(window.features).map(([name, q]) => {
      const score = Math.max(0, ...RATES.map(([k]) => (typeof q[k] === "number" ? Math.abs(q[k]) : 0)), q.constant ? 1 : 0, q.all_null ? 1 : 0);
      return { name, q, score };
    }).sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
    const shown = rows.slice(0, TABLE_ROWS);
    const key = JSON.stringify(shown.map((r) => [r.name, r.q]));
    const tbody = node.querySelector("tbody");
    if (tbody.dataset.key !== key) {
      tbody.dataset.key = key;
      tbody.replaceChildren(...shown.map(({ name, q }) => WK.el("tr", { dataset: { feature: name } },
        WK.el("th", { scope: "row" }, name),
        WK.el("td", {}, kinds[name] || "—"),
        RATES.map(([k]) => WK.el("td", { class: "num", dataset: { col: k, value: q[k] === null ? "" : String(q[k]) } },
          k === "missing_change" ? signedPct(q[k]) : pct(q[k]))),
        WK.el("td", {}, [q.all_null ? "all null" : null, q.constant ? "constant" : null].filter(Boolean).join(", ") || "—"),
      )));
    }
    const clean = rows.slice(TABLE_ROWS).filter((r) => r.score === 0).length;
    const rest = rows.length - shown.length;
    node.querySelector(".table-note").textContent = !rows.length
      ? "No features in this range."
      : rest ? `${rest} more feature${rest > 1 ? "s" : ""} not shown${clean === rest ? ", all without problems" : ""}.` : "";
  }

  function noReference(err) {
    for (const card of document.querySelectorAll("#panel > .card")) if (card.id !== "card-no-reference") card.hidden = true;
    const node = section("no-reference", "No reference data yet", "wide");
    node.setAttribute("role", "note");
    const message = (err.body && err.body.error && err.body.error.message) || err.message;
    let p = node.querySelector(".message");
    if (!p) {
      node.append(
        WK.el("p", {}, "Data-quality checks compare this model's traffic with a reference (training) data set: what a value range and a category look like when all is well."),
        (p = WK.el("p", { class: "message" })),
        WK.el("p", { class: "help" }, "For example: ", WK.el("code", {}, `curl -X PUT -H "Content-Type: text/csv" --data-binary @train.csv …/api/v1/models/${WK.ctx.model}/reference`)),
      );
    }
    p.textContent = `The server says: ${message.replace(/\.$/, "")}.`;
  }

  WK.onRefresh(async (ctx) => {
    let dq;
    let dqAll;
    try {
      [dq, dqAll] = await Promise.all([
        WK.get(ctx.api("data-quality", { window: ctx.sampleWindow })),
        WK.get(ctx.api("data-quality", { window: "all" })),
      ]);
    } catch (err) {
      if (err instanceof WK.ApiError && err.status === 409) {
        noReference(err);
        return;
      }
      throw err;
    }
    for (const card of document.querySelectorAll("#panel > .card")) card.hidden = card.id === "card-no-reference";
    const kinds = (ctx.detail && ctx.detail.features) || {};
    const names = Object.keys((dqAll.windows[0] || { features: {} }).features).sort();
    const all = dqAll.windows[0] || { features: {}, rows: 0, rejected: {}, schema: {} };
    const peak = (metric) => {
      let best = [null, null];
      for (const [name, q] of Object.entries(all.features)) if (typeof q[metric] === "number" && (best[1] === null || q[metric] > best[1])) best = [name, q[metric]];
      return best;
    };
    const [missName, missRate] = peak("missing_rate");
    const [oorName, oorRate] = peak("out_of_range_rate");
    const [unseenName, unseenRate] = peak("unseen_rate");
    const withMissing = Object.values(all.features).filter((q) => q.missing_rate > 0).length;
    const schemaNew = dqAll.features_not_in_reference || [];
    tiles([
      ["rows", "Rows checked", WK.fmt.int(all.rows), all.rows, `${names.length} features with a reference profile`],
      ["missing", "Most missing", pct(missRate), missRate, missRate > 0 ? `${missName}; ${withMissing} feature${withMissing === 1 ? "" : "s"} with gaps` : "no missing values"],
      ["out_of_range", "Most out of range", pct(oorRate), oorRate, oorRate > 0 ? oorName : "all numbers inside the reference's range"],
      ["unseen", "Most unseen categories", pct(unseenRate), unseenRate, unseenRate > 0 ? unseenName : "no new categories"],
      ["duplicates", "Duplicate events", WK.fmt.int(all.duplicates), all.duplicates, all.duplicate_rate ? `${pct(all.duplicate_rate)} of events refused as repeats` : "none refused"],
      ["rejected", "Rejected batches", WK.fmt.int(all.rejected.batches), all.rejected.batches,
        all.rejected.batches ? Object.entries(all.rejected.by_code).map(([c, n]) => `${c}: ${n}`).join(", ") : "none refused"],
      ["schema", "Not in reference", WK.fmt.int(schemaNew.length), schemaNew.length, schemaNew.length ? schemaNew.slice(0, 3).join(", ") + (schemaNew.length > 3 ? ", …" : "") : "every feature profiled"],
    ]);

    const by = `per ${ctx.sampleWindow} window`;
    await featureChart(ctx, dq, names, "missing_rate", "missing", "Missing values",
      `Share of each feature's rows that are null, ${by}.`,
      { none: "No features to check in this range", zero: "No missing values in this range ({n} features checked)" });
    await featureChart(ctx, dq, names, "out_of_range_rate", "out_of_range", "Out of range",
      `Share of a number feature's values below the reference's minimum or above its maximum, ${by}.`,
      { none: "No number features", zero: "Every number inside the reference's range ({n} features checked)" });
    await featureChart(ctx, dq, names, "unseen_rate", "unseen", "Unseen categories",
      `Share of a category feature's values that the reference never held, ${by}.`,
      { none: "No category features", zero: "No unseen categories in this range ({n} features checked)" });

    const x = dq.windows.map((w) => w.start);
    const [dupOver, rejOver] = await Promise.all([
      WK.monitorOverlays("duplicate_rate", { label: "duplicate rate", format: pct }),
      WK.monitorOverlays("rejected_batches", { label: "rejected batches", format: (v) => WK.fmt.number(v, 0), yaxis: "y2" }),
    ]);
    const dupEmpty = !dq.windows.some((w) => w.duplicates > 0 || w.rejected.batches > 0);
    const dupDiv = WK.chartCard("duplicates", "Duplicates and rejected batches",
      `Line: share of events refused as repeats (same event id and time), ${by} (left axis). Bars: batches refused at ingestion, e.g. a wrongly typed feature (right axis).`);
    dupDiv.closest(".card").classList.add("wide");
    WK.plot(dupDiv, [
      { x, y: dq.windows.map((w) => w.duplicate_rate), customdata: dq.windows.map((w) => w.duplicates), name: "duplicate rate",
        type: "scatter", mode: "lines+markers", marker: { size: 4 }, line: { width: 2 }, hovertemplate: "duplicate rate: %{y:.2%} (%{customdata} events)<extra></extra>" },
      { x, y: dq.windows.map((w) => w.rejected.batches), name: "rejected batches", type: "bar", yaxis: "y2", marker: { color: "#fca5a5" },
        customdata: dq.windows.map((w) => Object.entries(w.rejected.by_code).map(([c, n]) => `${c}: ${n}`).join(", ") || "none"),
        hovertemplate: "rejected batches: %{y} (%{customdata})<extra></extra>" },
      ...dupOver, ...rejOver,
    ], annotated({
      showlegend: true,
      yaxis: { title: { text: "duplicate rate" }, tickformat: ".2~%" },
      yaxis2: { title: { text: "rejected batches" }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false, automargin: true,
        dtick: Math.max(1, Math.ceil(Math.max(0, ...dq.windows.map((w) => w.rejected.batches)) / 4)) },
      margin: { l: 64, r: 64, t: 28, b: 40 },
    }, dupEmpty ? "No duplicates and no rejected batches in this range" : ""));

    worstTable(dqAll, kinds);
  });
})();
