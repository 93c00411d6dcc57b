// Overview page: every model as one row, worst first, refreshed in place (no flicker).
//
// The API calls this page makes (N = number of models); WK.onRefresh runs them on load and
// every 10 s while the tab is visible:
//   1. GET /api/v1/models
//   2. GET /api/v1/alerts?status=open&limit=1000                                   (health)
//   3. per model, the last hour as one window (the numbers in the cells):
//      GET /api/v1/models/{m}/metrics?names=count,throughput,latency_p95,error_rate,accuracy,f1,mae,label_coverage
//          &window=all&start=<now-1h>&end=<now>
//   4. per model, the last 60 whole minutes (the sparklines):
//      GET /api/v1/models/{m}/metrics?names=throughput,latency_p95,error_rate,accuracy,mae
//          &window=1m&start=<minute-60m>&end=<minute>          (minute = now rounded down)
//   and, per model at most once a minute (drift over an hour moves slowly; kept in between):
//   5. GET /api/v1/models/{m}                                   (does it have a reference?)
//   6. GET /api/v1/models/{m}/drift?start=<now-1h>&end=<now>&multivariate=false
//      (only when 5 says it has a reference; otherwise the cell says "no reference")
// So a refresh is 2 + 2N calls, plus 2 per model once a minute.
//
// Order (also said on the page): a critical alert firing, then a warning firing, then
// drifted, then the rest; within each group the higher error rate first, then the name.
"use strict";

(() => {
  const HOUR_MS = 3600 * 1000;
  const MINUTE_MS = 60 * 1000;
  const DRIFT_EVERY_MS = 60 * 1000;
  const HEADLINE = ["count", "throughput", "latency_p95", "error_rate", "accuracy", "f1", "mae", "label_coverage"];
  const SPARK = ["throughput", "latency_p95", "error_rate", "accuracy", "mae"];
  const TASKS = { classification: "Classification", regression: "Regression", llm: "LLM" };
  const COLUMNS = ["health", "throughput", "latency_p95", "error_rate", "quality", "drift", "last_seen"];
  const NUMERIC = new Set(["throughput", "latency_p95", "error_rate", "quality"]);
  const SEVERITIES = ["critical", "warning", "info"];
  const SYMBOL = { critical: "▲", warning: "●", info: "ℹ" };
  const { el, fmt } = WK;
  const SVG = "http://www.w3.org/2000/svg";
  const SPARK_W = 100;
  const SPARK_H = 28;

  // Formatting: the page and its tests share these rules (fixed decimals, "—" for no data).
  const fixed = (digits, scale = 1) => (v) => (v * scale).toFixed(digits);
  const FORMAT = {
    throughput: fixed(2),
    latency_p95: fixed(1),
    error_rate: fixed(2, 100),
    accuracy: fixed(1, 100),
    f1: fixed(2),
    mae: fixed(2),
    label_coverage: fixed(0, 100),
  };
  const SPARK_LABEL = {
    throughput: ["Throughput", (v) => `${FORMAT.throughput(v)} events/s`],
    latency_p95: ["Latency p95", (v) => `${FORMAT.latency_p95(v)} ms`],
    error_rate: ["Error rate", (v) => `${FORMAT.error_rate(v)} %`],
    accuracy: ["Accuracy", (v) => `${FORMAT.accuracy(v)} %`],
    mae: ["MAE", (v) => FORMAT.mae(v)],
  };

  const drift = new Map(); // model -> {at, state, summary, message}

  // ---- cells ------------------------------------------------------------------------------
  function changed(node, key) {
    // Touch the DOM only when something changed, so refreshes never flicker.
    const text = JSON.stringify(key);
    if (node.dataset.key === text) return false;
    node.dataset.key = text;
    return true;
  }

  function setCell(cell, text, value, label, extra) {
    const box = cell.querySelector(".text");
    if (!changed(box, [text, value, label, extra])) return;
    cell.dataset.value = value === null || value === undefined ? "" : String(value);
    const parts = [];
    if (text === null) {
      parts.push(el("span", { class: "value none" }, fmt.none), el("span", { class: "visually-hidden" }, " no data"));
    } else {
      parts.push(el("span", { class: "value" }, text));
    }
    if (label || extra) parts.push(el("span", { class: "metric-name" }, [label, extra].filter(Boolean).join(" · ")));
    box.replaceChildren(...parts);
  }

  function metricCell(cell, name, value, label, extra) {
    setCell(cell, value === null || value === undefined ? null : FORMAT[name](value), value, label, extra);
  }

  // A sparkline: one small inline SVG per cell, drawn from the API's per-minute series.
  // The y axis starts at 0 (latency, throughput, error rate, MAE); accuracy uses its own
  // range (at least 10 points tall) so a drop is visible. Gaps (minutes without data) break
  // the line. The last point is marked; the title and label say the range in words.
  function sparkline(cell, metric, windows, values) {
    let svg = cell.querySelector("svg.spark");
    if (!metric || !values) {
      if (svg) svg.remove();
      return;
    }
    if (!svg) {
      svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "spark");
      svg.setAttribute("viewBox", `0 0 ${SPARK_W} ${SPARK_H}`);
      svg.setAttribute("width", String(SPARK_W));
      svg.setAttribute("height", String(SPARK_H));
      svg.setAttribute("role", "img");
      cell.append(svg);
    }
    if (!changed(svg, [metric, windows[0], values])) return;
    svg.dataset.metric = metric;
    svg.dataset.start = windows[0] || "";
    svg.dataset.points = JSON.stringify(values);
    const [title, show] = SPARK_LABEL[metric];
    const known = values.filter((v) => typeof v === "number" && Number.isFinite(v));
    let text = `${title}, per minute over the last hour: no data`;
    if (known.length) {
      const lo = Math.min(...known);
      const hi = Math.max(...known);
      text = `${title}, per minute over the last hour: from ${show(lo)} to ${show(hi)}, last ${show(known[known.length - 1])}`;
    }
    svg.setAttribute("aria-label", text);
    const nodes = [];
    const t = document.createElementNS(SVG, "title");
    t.textContent = text;
    nodes.push(t);
    const base = document.createElementNS(SVG, "line");
    for (const [k, v] of Object.entries({ x1: 0, x2: SPARK_W, y1: SPARK_H - 0.5, y2: SPARK_H - 0.5, class: "spark-base" })) base.setAttribute(k, v);
    nodes.push(base);
    if (known.length) {
      let lo = 0;
      let hi = Math.max(...known);
      if (metric === "accuracy") {
        hi = Math.max(...known);
        lo = Math.min(Math.min(...known), hi - 0.1);
      }
      const span = hi - lo || 1;
      const x = (i) => (values.length > 1 ? (i * (SPARK_W - 4)) / (values.length - 1) + 2 : SPARK_W / 2);
      const y = (v) => SPARK_H - 3 - ((v - lo) / span) * (SPARK_H - 6);
      let run = [];
      let last = null;
      const flush = () => {
        if (run.length > 1) {
          const line = document.createElementNS(SVG, "polyline");
          line.setAttribute("points", run.join(" "));
          line.setAttribute("class", "spark-line");
          nodes.push(line);
        } else if (run.length === 1) {
          const [px, py] = run[0].split(",");
          const dot = document.createElementNS(SVG, "circle");
          for (const [k, v] of Object.entries({ cx: px, cy: py, r: 1.2, class: "spark-dot" })) dot.setAttribute(k, v);
          nodes.push(dot);
        }
        run = [];
      };
      values.forEach((v, i) => {
        if (typeof v === "number" && Number.isFinite(v)) {
          run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
          last = [x(i), y(v)];
        } else {
          flush();
        }
      });
      flush();
      const end = document.createElementNS(SVG, "circle");
      for (const [k, v] of Object.entries({ cx: last[0].toFixed(1), cy: last[1].toFixed(1), r: 2.2, class: "spark-last" })) end.setAttribute(k, v);
      nodes.push(end);
    }
    svg.replaceChildren(...nodes);
  }

  // ---- health (open alerts) and drift ---------------------------------------------------------
  function healthOf(alerts) {
    const firing = alerts.filter((a) => a.status === "firing");
    const pending = alerts.filter((a) => a.status === "pending");
    const counts = {};
    for (const a of firing) counts[a.severity] = (counts[a.severity] || 0) + 1;
    // The alert that has been firing longest among the most severe: "since when and why".
    let worst = null;
    for (const sev of SEVERITIES) {
      const of = firing.filter((a) => a.severity === sev);
      if (of.length) {
        worst = of.reduce((a, b) => (Date.parse(a.started_at) <= Date.parse(b.started_at) ? a : b));
        break;
      }
    }
    return { counts, pending: pending.length, worst, firing };
  }

  function healthCell(cell, model, health, now) {
    const box = cell.querySelector(".text");
    const why = health.worst ? [health.worst.monitor, health.worst.metric, health.worst.started_at] : null;
    const since = health.worst ? fmt.duration((now - Date.parse(health.worst.started_at)) / 1000) : null;
    const key = [health.counts, health.pending, why, since];
    if (!changed(box, key)) return;
    cell.dataset.critical = String(health.counts.critical || 0);
    cell.dataset.warning = String(health.counts.warning || 0);
    cell.dataset.info = String(health.counts.info || 0);
    cell.dataset.pending = String(health.pending);
    const href = `/models/${encodeURIComponent(model)}/alerts`;
    const parts = [];
    for (const sev of SEVERITIES) {
      const n = health.counts[sev];
      if (n) parts.push(el("a", { class: `badge sev-${sev}`, href, dataset: { severity: sev, count: n } }, `${SYMBOL[sev]} ${n} ${sev}`));
    }
    if (!parts.length && !health.pending) parts.push(el("span", { class: "badge ok", dataset: { severity: "none" } }, "✓ OK"));
    if (health.pending) parts.push(el("span", { class: "badge pending", title: "breaching, not firing yet", dataset: { severity: "pending", count: health.pending } }, `◌ ${health.pending} pending`));
    const badges = el("span", { class: "badges" }, parts);
    const lines = [badges];
    if (health.worst) {
      lines.push(el("span", { class: "why", title: `firing since ${fmt.time(health.worst.started_at)}` },
        `${health.worst.monitor} (${health.worst.metric}), firing for ${since}`));
    }
    box.replaceChildren(...lines);
  }

  async function loadDrift(model, start, end, nowMs) {
    const cached = drift.get(model.name);
    if (cached && nowMs - cached.at < DRIFT_EVERY_MS) return;
    const name = encodeURIComponent(model.name);
    try {
      const detail = await WK.get(`/api/v1/models/${name}`);
      if (!(detail.versions || []).some((v) => v.has_reference)) {
        drift.set(model.name, { at: nowMs, state: "no-reference" });
        return;
      }
      const q = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), multivariate: "false" });
      const got = await WK.get(`/api/v1/models/${name}/drift?${q}`);
      const s = got.summary || {};
      let state = "ok";
      if (s.drifted > 0) state = "drifted";
      else if (s.warned > 0) state = "warned";
      else if (s.features > 0 && s.insufficient === s.features) state = "insufficient";
      drift.set(model.name, { at: nowMs, state, summary: s });
    } catch (err) {
      if (!(err instanceof WK.ApiError)) throw err;
      if (err.status === 409) drift.set(model.name, { at: nowMs, state: "no-reference" });
      else if (err.status === 401 || err.status === 403) throw err;
      else drift.set(model.name, { at: nowMs, state: "error", message: err.message });
    }
  }

  function driftCell(cell, model) {
    const d = drift.get(model) || { state: "loading" };
    const box = cell.querySelector(".text");
    if (!changed(box, [d.state, d.summary, d.message])) return;
    cell.dataset.state = d.state;
    const s = d.summary || {};
    cell.dataset.drifted = s.drifted === undefined ? "" : String(s.drifted);
    cell.dataset.warned = s.warned === undefined ? "" : String(s.warned);
    const href = `/models/${encodeURIComponent(model)}/drift`;
    // How many features the verdict covers: those with too few values in the hour are not judged.
    const judged = s.insufficient ? `${s.features - s.insufficient} of ${s.features} features judged` : `${s.features} features judged`;
    let badge;
    let note = null;
    if (d.state === "drifted") {
      badge = el("a", { class: "badge sev-warning", href }, `◆ ${s.drifted} drifted`);
      note = `${s.warned ? `${s.warned} more near threshold; ` : ""}${judged}`;
    } else if (d.state === "warned") {
      badge = el("a", { class: "badge sev-info", href }, `◐ ${s.warned} near threshold`);
      note = judged;
    } else if (d.state === "ok") {
      badge = el("a", { class: "badge ok", href }, "✓ no drift");
      note = judged;
    } else if (d.state === "insufficient") {
      badge = el("span", { class: "badge" }, "too few events");
    } else if (d.state === "no-reference") {
      badge = el("span", { class: "badge", title: "Upload a reference (PUT /api/v1/models/{model}/reference) or pin a range of traffic to compare against." }, "no reference");
    } else if (d.state === "error") {
      badge = el("span", { class: "badge", title: d.message }, "✕ unavailable");
    } else {
      badge = el("span", { class: "badge" }, "…");
    }
    box.replaceChildren(...[badge, note ? el("span", { class: "metric-name" }, note) : null].filter(Boolean));
  }

  // ---- rows -------------------------------------------------------------------------------------
  function makeRow(model) {
    const href = `/models/${encodeURIComponent(model.name)}/operations`;
    const head = el("th", { scope: "row", dataset: { col: "name" } },
      el("a", { class: "model-name", href }, model.name),
      el("span", { class: "model-meta" }, el("span", { class: "task", dataset: { col: "task" } }), el("span", { class: "versions" })),
    );
    const row = el("tr", { dataset: { model: model.name } }, head);
    for (const col of COLUMNS) {
      const cls = NUMERIC.has(col) ? "num" : col === "last_seen" ? "when" : `col-${col}`;
      row.append(el("td", { class: cls, dataset: { col } }, el("div", { class: "text" })));
    }
    // Label coverage sits under the quality metric it qualifies (its own data-col inside).
    row.querySelector('[data-col="quality"]').append(
      el("div", { class: "coverage", dataset: { col: "label_coverage" } }, el("div", { class: "text" })));
    return row;
  }

  function qualityOf(model, value) {
    if (model.task === "regression") return "mae";
    if (model.task === "classification") return "accuracy";
    if (model.task === "llm") return null;
    if (value("accuracy") !== null) return "accuracy";
    if (value("mae") !== null) return "mae";
    return null;
  }

  function updateRow(row, item, now) {
    const { model, value, series } = item;
    const cell = (col) => row.querySelector(`[data-col="${col}"]`);
    const names = model.versions || [];
    const versions = names.length ? `${names.length > 1 ? "versions" : "version"} ${names.join(", ")}` : "";
    const task = model.task ? TASKS[model.task] || model.task : "";
    const taskEl = row.querySelector(".task");
    if (taskEl.textContent !== task) taskEl.textContent = task;
    taskEl.dataset.value = model.task || "";
    const versionsEl = row.querySelector(".versions");
    const shownVersions = task && versions ? ` · ${versions}` : versions;
    if (versionsEl.textContent !== shownVersions) versionsEl.textContent = shownVersions;

    healthCell(cell("health"), model.name, item.health, now);
    for (const name of ["throughput", "latency_p95", "error_rate"]) {
      metricCell(cell(name), name, value(name));
      sparkline(cell(name), name, series.windows, series.metrics[name]);
    }
    metricCell(cell("label_coverage"), "label_coverage", value("label_coverage"), "% labelled");
    const quality = qualityOf(model, value);
    const q = cell("quality");
    q.dataset.metric = quality || "";
    if (quality === null) {
      setCell(q, null, null, model.task === "llm" ? "no label metric" : null);
      sparkline(q, null);
    } else {
      const label = quality === "mae" ? "MAE" : "accuracy %";
      const f1 = quality === "accuracy" && value("f1") !== null ? `F1 ${FORMAT.f1(value("f1"))}` : null;
      metricCell(q, quality, value(quality), label, f1);
      sparkline(q, quality, series.windows, series.metrics[quality]);
    }
    driftCell(cell("drift"), model.name);
    const seen = cell("last_seen");
    if (model.last_seen) {
      setCell(seen, fmt.ago(model.last_seen, now), model.last_seen);
      seen.title = fmt.time(model.last_seen);
    } else {
      setCell(seen, null, null);
    }
  }

  // Worst first: critical firing > warning firing > drifted > the rest; then error rate.
  function rank(item) {
    if (item.health.counts.critical) return 0;
    if (item.health.counts.warning) return 1;
    if ((drift.get(item.model.name) || {}).state === "drifted") return 2;
    return 3;
  }

  function order(items) {
    const err = (item) => {
      const v = item.value("error_rate");
      return v === null ? -1 : v;
    };
    return items
      .map((item) => ({ ...item, rank: rank(item) }))
      .sort((a, b) => a.rank - b.rank || err(b) - err(a) || a.model.name.localeCompare(b.model.name));
  }

  function render(items, now) {
    const body = document.getElementById("model-rows");
    const existing = new Map([...body.rows].map((row) => [row.dataset.model, row]));
    items.forEach((item, i) => {
      let row = existing.get(item.model.name);
      if (!row) row = makeRow(item.model);
      existing.delete(item.model.name);
      if (body.rows[i] !== row) body.insertBefore(row, body.rows[i] || null);
      row.dataset.rank = String(item.rank);
      updateRow(row, item, now);
    });
    for (const row of existing.values()) row.remove();
    document.getElementById("empty").hidden = items.length > 0;
    document.querySelector(".table-wrap").hidden = items.length === 0;
    document.getElementById("order-note").hidden = items.length === 0;
  }

  WK.onRefresh(async () => {
    const end = new Date();
    const start = new Date(end.getTime() - HOUR_MS);
    const sparkEnd = new Date(Math.floor(end.getTime() / MINUTE_MS) * MINUTE_MS);
    const sparkStart = new Date(sparkEnd.getTime() - HOUR_MS);
    const headline = new URLSearchParams({ names: HEADLINE.join(","), window: "all", start: start.toISOString(), end: end.toISOString() });
    const spark = new URLSearchParams({ names: SPARK.join(","), window: "1m", start: sparkStart.toISOString(), end: sparkEnd.toISOString() });
    const [{ models }, { alerts }] = await Promise.all([
      WK.get("/api/v1/models"),
      WK.get("/api/v1/alerts?status=open&limit=1000"),
    ]);
    const items = await Promise.all(models.map(async (model) => {
      const name = encodeURIComponent(model.name);
      const [hour, minutes] = await Promise.all([
        WK.get(`/api/v1/models/${name}/metrics?${headline}`),
        WK.get(`/api/v1/models/${name}/metrics?${spark}`),
        loadDrift(model, start, end, end.getTime()),
      ]);
      const metrics = hour.metrics || {};
      const value = (n) => (metrics[n] && metrics[n].length && metrics[n][0] !== undefined ? metrics[n][0] : null);
      const health = healthOf(alerts.filter((a) => a.model === model.name));
      return { model, value, series: { windows: minutes.windows || [], metrics: minutes.metrics || {} }, health };
    }));
    for (const name of [...drift.keys()]) if (!models.some((m) => m.name === name)) drift.delete(name);
    render(order(items), end.getTime());
  });
})();
