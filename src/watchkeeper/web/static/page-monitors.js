// Monitors page: every monitor definition (settings file, API, default sets) with its
// condition, windows and state, and a link to the model tab that shows its metric.
"use strict";

(() => {
  const el = WK.el;
  const fmt = WK.fmt;
  const SEVERITY_SYMBOL = { critical: "▲", warning: "●", info: "◆" };
  const SOURCES = [["", "Any source"], ["file", "Settings file"], ["api", "API"], ["defaults", "Default sets"]];
  const STATES = [["", "Any state"], ["alerting", "Firing or pending"], ["ok", "OK"]];
  const short = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) : fmt.none);
  // Defaults of a definition (the API shows definitions as written, defaults left out).
  const DYNAMIC = { sensitivity: 3, seasonality: "hour_of_week", min_history: 8, lookback: "28d", direction: "both", severity: "warning" };

  function num(v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return fmt.none;
    if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  // The model tab that charts a metric.
  function tabFor(metric) {
    if (/^(count|throughput|error_count|error_rate|latency_\w+)$/.test(metric)) return ["operations", "Operations"];
    if (/^(input_tokens|output_tokens|total_tokens|cost_usd|ttft_\w+)$/.test(metric)) return ["llm", "LLM"];
    if (metric === "drift_score" || metric.startsWith("drift:")) return ["drift", "Drift"];
    if (metric.includes(":") || metric === "duplicate_rate" || metric === "rejected_batches") return ["data-quality", "Data quality"];
    return ["quality", "Quality"];
  }

  function metricLink(m) {
    const [tab, label] = tabFor(m.metric);
    const q = new URLSearchParams();
    if (m.version) q.set("version", m.version);
    if (m.segment && !m.segment.endsWith(":*")) q.set("segment", m.segment);
    const qs = q.toString();
    return el("a", { href: `/models/${encodeURIComponent(m.model)}/${tab}${qs ? "?" + qs : ""}`, "data-tab": tab, title: `Open the ${label} tab of ${m.model}` },
      el("code", {}, m.metric), el("span", { class: "sub" }, `${label} tab →`));
  }

  function condition(m) {
    const c = m.condition || {};
    const op = c.op === "below" ? "below" : "above";
    if (c.type === "static") return `${op} ${num(c.threshold)} → ${c.severity || "critical"}`;
    if (c.type === "multi_level") return `${op} ${num(c.warning)} → warning, ${op} ${num(c.critical)} → critical`;
    if (c.type === "dynamic") {
      const d = { ...DYNAMIC, ...c };
      const dir = { both: "outside", above: "above", below: "below" }[d.direction] || d.direction;
      return `${dir} a learned band (sensitivity ${d.sensitivity}, ${d.seasonality === "none" ? "no" : String(d.seasonality).replaceAll("_", " ")} seasonality, ${d.lookback} lookback, ≥ ${d.min_history} windows of history) → ${d.severity}` +
        (d.min_band ? `; band at least ${num(d.min_band)} wide` : "");
    }
    return JSON.stringify(c);
  }

  function rule(m) {
    const fire = m.fire_after || 1;
    const of = m.of_last || 1;
    const parts = [`${m.window} windows`, of > 1 || fire > 1 ? `fires when ${fire} of the last ${of} breach` : "fires on the first breach",
      `resolves after ${m.resolve_after || 1} clean`];
    if (m.min_samples) parts.push(`≥ ${m.min_samples} samples`);
    if (m.no_data && m.no_data !== "keep") parts.push(`no data: ${m.no_data}`);
    return parts.join("; ");
  }

  function source(m) {
    if (m.source === "file") return ["settings file", null];
    if (m.source === "defaults") return [`default set of ${m.default_set || m.model}`, "settings file"];
    return ["API", m.updated_by ? `by ${m.updated_by}, ${short(m.updated_at)}` : null];
  }

  // The state of a monitor: its worst series, and each series' status when it has several.
  function stateCell(m, openBySeries) {
    const series = m.series || [];
    const alerting = series.filter((s) => s.status === "firing" || s.status === "pending");
    const items = [];
    if (!m.enabled) items.push(el("span", { class: "badge" }, "disabled"));
    if (!series.length) items.push(el("span", { class: "muted" }, "not evaluated yet"));
    else if (!alerting.length) items.push(el("span", { class: "badge ok" }, `✓ ok${series.length > 1 ? ` (${series.length} series)` : ""}`));
    alerting.sort((x, y) => (x.status === "firing" ? 0 : 1) - (y.status === "firing" ? 0 : 1) || (x.severity === "critical" ? 0 : 1) - (y.severity === "critical" ? 0 : 1));
    for (const s of alerting) {
      const cls = s.status === "firing" ? `sev-${s.severity || "warning"}` : "sev-info";
      const sym = s.status === "firing" ? SEVERITY_SYMBOL[s.severity] || "●" : "◌";
      items.push(el("span", { class: "series-state" },
        el("span", { class: `badge ${cls}` }, `${sym} ${s.severity || ""} ${s.status}`),
        s.segment_value ? ` ${s.segment_value}` : null,
        el("span", { class: "sub" }, `since ${short(s.since)}`)));
    }
    const last = series.map((s) => s.last_window).filter(Boolean).sort().pop();
    if (last) items.push(el("span", { class: "sub" }, `last window ${short(last)}`));
    const open = series.map((s) => openBySeries.get(s.series)).filter(Boolean);
    return [items, open];
  }

  function params() {
    const p = new URLSearchParams(location.search);
    const pick = (name, allowed) => (allowed.some(([v]) => v === p.get(name)) ? p.get(name) : "");
    return { model: p.get("model") || "", source: pick("source", SOURCES), state: pick("state", STATES) };
  }

  function buildFilters(models) {
    const p = params();
    const modelOptions = [["", "All models"], ...models.map((m) => [m, m])];
    WK.filterBar("monitor-filters", "Filter monitors", JSON.stringify(modelOptions), [
      ["filter-model", "Model", modelOptions, p.model],
      ["filter-source", "Defined in", SOURCES, p.source],
      ["filter-state", "State", STATES, p.state],
    ]);
  }

  const card = WK.bodyCard;


  function draw(monitors, pending, openAlerts) {
    const p = params();
    const openBySeries = new Map(openAlerts.map((a) => [a.series, a]));
    const alertingOf = (m) => (m.series || []).some((s) => s.status === "firing" || s.status === "pending");
    let shown = monitors.filter((m) => (!p.model || m.model === p.model) && (!p.source || m.source === p.source) &&
      (!p.state || (p.state === "alerting") === alertingOf(m)));
    // Alerting monitors first (firing critical, firing, pending), then by model and name.
    const rank = (m) => {
      const s = m.series || [];
      if (s.some((x) => x.status === "firing" && x.severity === "critical")) return 0;
      if (s.some((x) => x.status === "firing")) return 1;
      if (s.some((x) => x.status === "pending")) return 2;
      return 3;
    };
    shown = [...shown].sort((x, y) => rank(x) - rank(y) || x.model.localeCompare(y.model) || x.name.localeCompare(y.name));
    const body = card("monitors", "Monitors", "Every monitor with its condition and state, alerting ones first. The metric links to the model tab that charts it.");
    const key = JSON.stringify([shown, openAlerts.map((a) => [a.id, a.last_value]), pending]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    const alerting = monitors.filter(alertingOf).length;
    const children = [el("p", { class: "muted", id: "monitors-count" }, `${shown.length} of ${monitors.length} monitor(s) shown; ${alerting} alerting.`)];
    if (pending.length) {
      children.push(el("p", { class: "notice notice-info", id: "pending-defaults" },
        "Default sets waiting for their model's first events: ", pending.map((d) => `${d.defaults} (${d.reason})`).join("; "), "."));
    }
    if (!shown.length) {
      children.push(el("p", { id: "no-monitors" }, monitors.length ? "No monitor matches these filters." : "No monitors are defined: add them to the settings file's monitors: section, or POST /api/v1/monitors."));
    } else {
      const rows = shown.map((m) => {
        const [src, srcSub] = source(m);
        const [state, open] = stateCell(m, openBySeries);
        return el("tr", { dataset: { monitor: m.name, model: m.model, source: m.source } },
          el("td", { "data-col": "name" }, el("strong", {}, m.name), m.description ? el("span", { class: "sub" }, m.description) : null,
            Object.keys(m.labels || {}).length ? el("span", { class: "sub" }, Object.entries(m.labels).map(([k, v]) => `${k}=${v}`).join(", ")) : null),
          el("td", { "data-col": "source" }, src, srcSub ? el("span", { class: "sub" }, srcSub) : null),
          el("td", { "data-col": "model" }, el("a", { href: `/models/${encodeURIComponent(m.model)}/alerts` }, m.model),
            m.version ? el("span", { class: "sub" }, `version ${m.version}`) : null, m.segment ? el("span", { class: "sub" }, `segment ${m.segment}`) : null),
          el("td", { "data-col": "metric" }, metricLink(m)),
          el("td", { "data-col": "condition" }, condition(m), el("span", { class: "sub" }, rule(m))),
          el("td", { "data-col": "state" }, state),
          el("td", { "data-col": "value", class: "num" }, open.length ? open.map((a) => el("span", { class: "value-line" }, num(a.last_value), a.segment_value ? el("span", { class: "sub" }, a.segment_value) : null)) : el("span", { class: "muted", title: "The last value is kept with an open alert" }, fmt.none)));
      });
      children.push(el("div", { class: "table-scroll" }, el("table", { class: "data", id: "monitors-table" },
        el("thead", {}, el("tr", {}, ["Monitor", "Defined in", "Model", "Metric", "Condition and windows", "State", "Value (open alert)"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows))));
    }
    body.replaceChildren(...children);
  }

  WK.onRefresh(async () => {
    const [data, open] = await Promise.all([
      WK.get("/api/v1/monitors"),
      WK.get("/api/v1/alerts?status=open&limit=1000").then((r) => r.alerts),
    ]);
    const models = [...new Set(data.monitors.map((m) => m.model))].sort();
    buildFilters(models);
    draw(data.monitors, data.pending_defaults || [], open);
  });
})();
