// Shared by every dashboard page: the JSON API client, the page's context (model, range,
// filters — all in the URL so a link shows the same view), charts, formatting and the live
// refresh loop. Pages and tabs register what they draw with WK.onRefresh(fn).
"use strict";

(() => {
  const REFRESH_MS = 10000;
  const MINUTE = 60 * 1000;
  // Range presets: span, the chart window and the coarser window of the drift heat-map, which
  // is also ctx.sampleWindow: the window of metrics that need many samples each (quality from
  // late labels, data-quality rates), so they are not noise, and stay cheap over 30 days.
  const PRESETS = {
    "15m": { label: "15 min", span: 15 * MINUTE, window: "1m", heat: "1m" },
    "1h": { label: "1 h", span: 60 * MINUTE, window: "1m", heat: "5m" },
    "24h": { label: "24 h", span: 24 * 60 * MINUTE, window: "15m", heat: "1h" },
    "7d": { label: "7 d", span: 7 * 24 * 60 * MINUTE, window: "1h", heat: "1h" },
    "30d": { label: "30 d", span: 30 * 24 * 60 * MINUTE, window: "1h", heat: "1d" },
  };
  const WINDOW_MS = { "1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "1h": 60 * MINUTE, "1d": 1440 * MINUTE };
  const DEFAULT_PRESET = "1h";

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  async function request(method, url, body) {
    const headers = { Accept: "application/json" };
    const init = { method, credentials: "same-origin", headers };
    if (method !== "GET") {
      headers["X-Watchkeeper-Request"] = "1"; // lets the cookie authorize writes (CSRF-safe)
      if (body !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, "the server did not answer (is it still running?)");
    }
    if (response.status === 204) return null;
    let parsed = null;
    try {
      parsed = await response.json();
    } catch (err) { /* not JSON */ }
    if (!response.ok) {
      let detail = response.statusText;
      if (parsed && parsed.error && parsed.error.message) detail = parsed.error.message;
      else if (parsed && typeof parsed.detail === "string") detail = parsed.detail;
      throw new ApiError(response.status, `HTTP ${response.status}${detail ? ": " + detail : ""}`, parsed);
    }
    return parsed;
  }

  const get = (url) => request("GET", url);
  const send = (method, url, body) => request(method, url, body);

  // A tiny DOM builder: el("a", {href: "/", class: "x"}, "text", child).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ---- formatting: fixed decimals, "—" for no data -------------------------------------
  const none = "—";
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const fmt = {
    none,
    number: (v, digits = 2) => (isNum(v) ? v.toFixed(digits) : none),
    int: (v) => (isNum(v) ? Math.round(v).toLocaleString("en-US") : none),
    pct: (v, digits = 1) => (isNum(v) ? (v * 100).toFixed(digits) + " %" : none),
    ms: (v, digits = 1) => (isNum(v) ? v.toFixed(digits) + " ms" : none),
    usd: (v, digits = 4) => (isNum(v) ? "$" + v.toFixed(digits) : none),
    // Times are shown in UTC everywhere (charts too), so a link shows the same clock to all.
    time: (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC" : none),
    ago(iso, now = Date.now()) {
      if (!iso) return none;
      const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
      if (seconds < 60) return `${seconds} s ago`;
      if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
      if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
      return `${Math.floor(seconds / 86400)} d ago`;
    },
    duration(seconds) {
      if (!isNum(seconds)) return none;
      if (seconds < 60) return `${Math.round(seconds)} s`;
      if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
      if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
      return `${(seconds / 86400).toFixed(1)} d`;
    },
  };

  // ---- the page's context, read from the URL --------------------------------------------
  function pickWindow(spanMs, target = 240) {
    for (const w of ["1m", "5m", "15m", "1h", "1d"]) if (spanMs / WINDOW_MS[w] <= target * 3) return w;
    return "1d";
  }

  function readContext() {
    const body = document.body.dataset;
    const params = new URLSearchParams(location.search);
    let preset = params.get("range") || DEFAULT_PRESET;
    let start = null;
    let end = null;
    if (preset === "custom") {
      start = new Date(params.get("start") || "");
      end = new Date(params.get("end") || "");
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || start >= end) {
        preset = DEFAULT_PRESET;
      }
    } else if (!PRESETS[preset]) {
      preset = DEFAULT_PRESET;
    }
    const ctx = {
      model: body.model || null,
      tab: body.tab || null,
      preset,
      live: preset !== "custom",
      version: params.get("version") || null,
      segment: params.get("segment") || null,
      params,
      start,
      end,
      window: null,
      heatWindow: null,
      sampleWindow: null,
      detail: null, // GET /api/v1/models/{model}, refreshed with the page
    };
    ctx.advance = () => {
      // Live ranges end now; windows are the preset's (custom: picked from the span).
      if (ctx.live) {
        ctx.end = new Date();
        ctx.start = new Date(ctx.end.getTime() - PRESETS[ctx.preset].span);
        ctx.window = PRESETS[ctx.preset].window;
        ctx.heatWindow = PRESETS[ctx.preset].heat;
        ctx.sampleWindow = PRESETS[ctx.preset].heat;
      } else {
        const span = ctx.end - ctx.start;
        ctx.window = pickWindow(span);
        ctx.heatWindow = pickWindow(span, 40);
        ctx.sampleWindow = ctx.heatWindow;
      }
    };
    // Query parameters every API call of this view shares; extra ones are added.
    ctx.query = (extra = {}, { filters = true } = {}) => {
      const q = new URLSearchParams({ start: ctx.start.toISOString(), end: ctx.end.toISOString() });
      if (filters && ctx.version) q.set("version", ctx.version);
      if (filters && ctx.segment) q.set("segment", ctx.segment);
      for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined) q.set(k, String(v));
      return q;
    };
    ctx.api = (path, extra, options) =>
      `/api/v1/models/${encodeURIComponent(ctx.model)}/${path}?${ctx.query(extra, options)}`;
    ctx.advance();
    return ctx;
  }

  // The page URL with some parameters changed (null removes one).
  function urlWith(changes, path = location.pathname) {
    const params = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === undefined || v === "") params.delete(k);
      else params.set(k, v);
    }
    const qs = params.toString();
    return path + (qs ? "?" + qs : "");
  }

  // A tab's own view state (e.g. the chosen segment name) kept in the URL without a reload.
  function setParam(name, value) {
    history.replaceState(null, "", urlWith({ [name]: value }));
    WK.ctx.params = new URLSearchParams(location.search);
    syncLinks();
  }

  // ---- charts -----------------------------------------------------------------------------
  const COLORS = ["#1d4ed8", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];
  const PLOT_CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"],
  };

  function baseLayout(layout) {
    const ctx = WK.ctx;
    const xaxis = { type: "date", automargin: true, gridcolor: "#e5e7eb", hoverformat: "%Y-%m-%d %H:%M UTC" };
    if (ctx && ctx.start) xaxis.range = [ctx.start.toISOString(), ctx.end.toISOString()];
    return {
      // A constant uirevision keeps the user's zoom and hidden traces across refreshes.
      uirevision: "keep",
      margin: { l: 64, r: 24, t: 28, b: 40 },
      height: 300,
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 13, color: "#1b1f24" },
      paper_bgcolor: "#ffffff",
      plot_bgcolor: "#ffffff",
      colorway: COLORS,
      hovermode: "x unified",
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      ...layout,
      xaxis: { ...xaxis, ...(layout.xaxis || {}) },
      yaxis: { automargin: true, gridcolor: "#e5e7eb", rangemode: "tozero", ...(layout.yaxis || {}) },
    };
  }

  // Charts follow their card's width (the grid reflows as cards are added or the window
  // changes), not only the window's.
  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) if (entry.target.dataset.drawn) window.Plotly.Plots.resize(entry.target);
  });

  // Draw (or redraw in place) a chart. Plotly.react diffs, so nothing flickers.
  function plot(target, traces, layout = {}, config = {}) {
    const node = typeof target === "string" ? document.getElementById(target) : target;
    const fullLayout = layout.raw ? layout.raw : baseLayout(layout);
    // A live refresh moves the x range's end, which would undo the user's zoom (uirevision
    // keeps it only while the given range stays the same): keep the zoomed range instead.
    if (node.userXRange && fullLayout.xaxis) fullLayout.xaxis = { ...fullLayout.xaxis, range: node.userXRange, autorange: false };
    window.Plotly.react(node, traces, fullLayout, { ...PLOT_CONFIG, ...config });
    if (!node.dataset.drawn) {
      resizer.observe(node);
      node.on("plotly_relayout", (change) => {
        if (change["xaxis.autorange"]) node.userXRange = null; // double-click: back to the view's range
        else if (change["xaxis.range"]) node.userXRange = change["xaxis.range"].slice();
        else if (change["xaxis.range[0]"] !== undefined) node.userXRange = [change["xaxis.range[0]"], change["xaxis.range[1]"]];
      });
    }
    node.dataset.drawn = "true";
    return node;
  }

  // A chart card: heading, optional description, the plot area and a data table fallback.
  function chartCard(id, title, description) {
    let card = document.getElementById(`card-${id}`);
    if (card) return card.querySelector(".plot");
    card = el(
      "section",
      { class: "card chart-card", id: `card-${id}`, "aria-labelledby": `title-${id}` },
      el("h2", { id: `title-${id}` }, title),
      description ? el("p", { class: "help" }, description) : null,
      el("div", { class: "plot", id: `plot-${id}`, role: "img", "aria-label": title }),
    );
    document.getElementById("panel").append(card);
    return card.querySelector(".plot");
  }

  // A card in the panel, made once and found again on later refreshes (and un-hidden).
  function section(id, title, cls = "") {
    let node = document.getElementById(`card-${id}`);
    if (!node) {
      node = el("section", { class: `card chart-card ${cls}`.trim(), id: `card-${id}`, "aria-labelledby": `title-${id}` },
        el("h2", { id: `title-${id}` }, title));
      document.getElementById("panel").append(node);
    }
    node.hidden = false;
    return node;
  }

  // A wide card of figure tiles, updated in place: items are [key, label, text, raw, note].
  function tiles(id, title, items) {
    const node = section(id, title, "wide");
    let row = node.querySelector(".stat-row");
    if (!row) node.append((row = el("div", { class: "stat-row" })));
    for (const [key, label, text, raw, note] of items) {
      let tile = row.querySelector(`[data-stat="${key}"]`);
      if (!tile) {
        tile = el("div", { class: "stat", dataset: { stat: key } },
          el("span", { class: "label" }, label), el("span", { class: "value" }), el("span", { class: "help" }));
        row.append(tile);
      }
      tile.querySelector(".value").textContent = text;
      tile.dataset.value = raw === null || raw === undefined ? "" : String(raw);
      tile.querySelector(".help").textContent = note || "";
    }
    return node;
  }

  // A wide card with a heading, an optional help line and a body, made once; returns the body.
  function bodyCard(id, title, help, cls = "") {
    let node = document.getElementById(id);
    if (!node) {
      node = el("section", { class: `card wide ${cls}`.trim(), id, "aria-labelledby": `${id}-title` },
        el("h2", { id: `${id}-title` }, title), help ? el("p", { class: "help" }, help) : null, el("div", { class: "body" }));
      document.getElementById("panel").append(node);
    }
    return node.querySelector(".body");
  }

  // A page's filter bar: selects whose values live in the URL (a link shows the same list).
  // selects: [[id, label, [[value, text], ...], chosen], ...]; the select's name (its id
  // without "filter-") is the URL parameter. Rebuilt only when ``key`` (its options) changes.
  function filterBar(boxId, label, key, selects, extra = {}) {
    let box = document.getElementById(boxId);
    if (box && box.dataset.key === key) return;
    const form = el("form", { class: "page-filters", role: "search", "aria-label": label, ...extra },
      ...selects.flatMap(([id, text, options, value]) => [el("label", { for: id }, text),
        el("select", { id, name: id.replace("filter-", "") }, options.map(([v, t]) => el("option", { value: v, selected: v === value || null }, t)))]));
    form.addEventListener("change", (event) => {
      setParam(event.target.name, event.target.value || null);
      refresh();
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    if (!box) {
      box = el("section", { class: "card wide", id: boxId, "aria-label": "Filters" });
      document.getElementById("panel").prepend(box);
    }
    box.dataset.key = key;
    box.replaceChildren(form);
  }

  // A chart with nothing to show says so (text in the middle) instead of bare axes.
  function noData(layout, text) {
    if (!text) return layout;
    return { ...layout, annotations: [{ text, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { size: 14, color: "#57606a" } }] };
  }

  // ---- status, errors, refresh ------------------------------------------------------------
  let lastSuccess = null;
  const refreshers = [];
  let timer = null;
  let running = false;

  function status(text) {
    const node = document.getElementById("status");
    if (node) node.textContent = text;
  }

  function showError(err) {
    const box = document.getElementById("error");
    if (!box) return;
    box.replaceChildren();
    box.append(el("strong", {}, "Could not load data: "), document.createTextNode(err.message + ". "));
    if (err.status === 401 || err.status === 403) {
      box.append(el("a", { href: "/login" }, "Sign in again"), ".");
    } else if (WK.ctx.live) {
      const when = lastSuccess ? `Showing data from ${lastSuccess.toISOString().slice(11, 19)} UTC; r` : "R";
      box.append(`${when}etrying every ${REFRESH_MS / 1000} s.`);
    }
    box.hidden = false;
    status("Update failed.");
    if (!(err instanceof ApiError)) console.error(err); // a bug in the page, not the server
  }

  async function loadDetail() {
    if (!WK.ctx.model) return;
    WK.ctx.detail = await get(`/api/v1/models/${encodeURIComponent(WK.ctx.model)}`);
  }

  async function refresh() {
    if (running) return;
    clearTimeout(timer);
    if (document.hidden) return; // resumes on visibilitychange
    running = true;
    WK.ctx.advance();
    try {
      await loadDetail();
      if (WK.ctx.model) await modelHeader();
      for (const fn of refreshers) await fn(WK.ctx);
      lastSuccess = new Date();
      const box = document.getElementById("error");
      if (box) box.hidden = true;
      const live = WK.ctx.live ? ` Live: refreshes every ${REFRESH_MS / 1000} s.` : "";
      status(`Updated ${lastSuccess.toISOString().slice(11, 19)} UTC.${live}`);
      document.body.dataset.loaded = "true";
    } catch (err) {
      showError(err);
      if (!(err instanceof ApiError)) throw err;
    } finally {
      running = false;
      if (WK.ctx.live) timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function onRefresh(fn) {
    refreshers.push(fn);
  }

  // ---- the model page's header: range picker, filters, tab links, health -----------------
  function syncLinks() {
    // Tab links and range links carry the view's parameters (range, filters).
    const keep = ["range", "start", "end", "version", "segment"];
    const params = new URLSearchParams(location.search);
    for (const link of document.querySelectorAll("[data-keep-query]")) {
      const own = new URLSearchParams(link.dataset.ownQuery || "");
      for (const k of keep) if (params.has(k) && !own.has(k) && link.dataset.keepQuery.includes(k)) own.set(k, params.get(k));
      const qs = own.toString();
      link.href = link.dataset.path + (qs ? "?" + qs : "");
    }
  }

  function toLocalInput(date) {
    // <input type="datetime-local"> in UTC (the page shows UTC everywhere).
    return date.toISOString().slice(0, 16);
  }

  function buildRangePicker() {
    const box = document.getElementById("range-picker");
    if (!box) return;
    const ctx = WK.ctx;
    const presets = el("ul", { class: "segmented", "aria-label": "Time range" });
    for (const [key, preset] of Object.entries(PRESETS)) {
      const link = el("a", {
        href: urlWith({ range: key, start: null, end: null }),
        "aria-current": ctx.preset === key ? "true" : null,
        dataset: { range: key },
      }, preset.label);
      presets.append(el("li", {}, link));
    }
    const custom = el("details", { class: "custom-range", open: ctx.preset === "custom" || null },
      el("summary", { "aria-current": ctx.preset === "custom" ? "true" : null }, "Custom"),
      el("form", { id: "custom-range" },
        el("label", { for: "range-start" }, "From (UTC)"),
        el("input", { id: "range-start", name: "start", type: "datetime-local", required: true, value: toLocalInput(ctx.start) }),
        el("label", { for: "range-end" }, "To (UTC)"),
        el("input", { id: "range-end", name: "end", type: "datetime-local", required: true, value: toLocalInput(ctx.end) }),
        el("button", { type: "submit", class: "secondary" }, "Apply"),
      ),
    );
    custom.querySelector("form").addEventListener("submit", (event) => {
      event.preventDefault();
      const start = new Date(document.getElementById("range-start").value + ":00Z");
      const end = new Date(document.getElementById("range-end").value + ":00Z");
      if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || start >= end) {
        showError(new ApiError(0, "the custom range needs a start before its end"));
        return;
      }
      location.href = urlWith({ range: "custom", start: start.toISOString(), end: end.toISOString() });
    });
    box.replaceChildren(presets, custom);
  }

  async function buildFilters() {
    const ctx = WK.ctx;
    const versionSelect = document.getElementById("filter-version");
    const segmentSelect = document.getElementById("filter-segment");
    if (!versionSelect || !ctx.detail) return;
    const versions = (ctx.detail.versions || []).map((v) => v.version).filter((v) => v !== null);
    const wantedV = ["", ...versions];
    if (ctx.version && !wantedV.includes(ctx.version)) wantedV.push(ctx.version);
    if (versionSelect.dataset.options !== JSON.stringify(wantedV)) {
      versionSelect.replaceChildren(...wantedV.map((v) => el("option", { value: v, selected: v === (ctx.version || "") || null }, v || "All versions")));
      versionSelect.dataset.options = JSON.stringify(wantedV);
    }
    if (segmentSelect && segmentSelect.dataset.filled !== "true") {
      segmentSelect.dataset.filled = "true";
      const options = [el("option", { value: "" }, "All segments")];
      for (const name of ctx.detail.segments || []) {
        let values = [];
        try {
          const got = await get(ctx.api("segments", { by: name, names: "count", limit: 50 }, { filters: false }));
          values = (got.values || []).map((v) => v.value);
        } catch (err) {
          values = [];
        }
        if (values.length) options.push(el("optgroup", { label: name }, values.map((v) => el("option", { value: `${name}:${v}` }, `${name} = ${v}`))));
      }
      if (ctx.segment && !options.some((o) => o.value === ctx.segment)) options.push(el("option", { value: ctx.segment }, ctx.segment.replace(":", " = ")));
      segmentSelect.replaceChildren(...options);
      segmentSelect.value = ctx.segment || "";
    }
  }

  function bindFilters() {
    for (const [id, param] of [["filter-version", "version"], ["filter-segment", "segment"]]) {
      const select = document.getElementById(id);
      if (!select) continue;
      select.addEventListener("change", () => {
        location.href = urlWith({ [param]: select.value || null });
      });
    }
  }

  async function modelHeader() {
    const ctx = WK.ctx;
    await buildFilters();
    const health = document.getElementById("model-health");
    if (!health) return;
    const { alerts } = await get(`/api/v1/alerts?${new URLSearchParams({ model: ctx.model, status: "open", limit: "200" })}`);
    const firing = alerts.filter((a) => a.status === "firing");
    const key = JSON.stringify(firing.map((a) => [a.id, a.severity]));
    if (health.dataset.key === key) return;
    health.dataset.key = key;
    health.replaceChildren();
    if (!firing.length) {
      health.append(el("span", { class: "badge ok" }, "✓ No firing alerts"));
      return;
    }
    const bySeverity = {};
    for (const a of firing) bySeverity[a.severity] = (bySeverity[a.severity] || 0) + 1;
    for (const sev of ["critical", "warning", "info"]) {
      if (!bySeverity[sev]) continue;
      health.append(el("a", { class: `badge sev-${sev}`, href: urlWith({}, `/models/${encodeURIComponent(ctx.model)}/alerts`) },
        `${sev === "critical" ? "▲" : "●"} ${bySeverity[sev]} ${sev} firing`));
    }
  }

  function start() {
    WK.ctx = readContext();
    buildRangePicker();
    bindFilters();
    syncLinks();
    const span = document.getElementById("range-label");
    if (span) {
      span.textContent = WK.ctx.live
        ? `Last ${PRESETS[WK.ctx.preset].label}, ${WK.ctx.window} windows`
        : `${fmt.time(WK.ctx.start.toISOString())} – ${fmt.time(WK.ctx.end.toISOString())}, ${WK.ctx.window} windows`;
    }
    refresh();
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && WK.ctx && WK.ctx.live) refresh();
  });

  window.WK = {
    ApiError, get, send, el, fmt, plot, baseLayout, chartCard, section, tiles, noData, bodyCard, filterBar, status, showError,
    onRefresh, refresh, setParam, urlWith, COLORS, PRESETS, WINDOW_MS, ctx: null,
  };
  // Page scripts load after this one (defer keeps order) and register before this runs.
  document.addEventListener("DOMContentLoaded", start);
})();
