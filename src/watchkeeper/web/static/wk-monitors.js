// Monitor overlays for the model page's charts: the static threshold(s) of every monitor
// watching a charted metric as dashed lines (one per level), a dynamic monitor's learned band
// as a shaded area, and the windows the alert engine judged as breaches as markers.
//
//   const traces = await WK.monitorOverlays("latency_p95", { label: "p95", unit: WK.fmt.ms });
//   WK.plot(div, [...dataTraces, ...traces], layout);
//
// metricName may be one name or a list (["missing_rate:amount", ...]). Options: `label`
// (the metric's short name in legend entries; default the metric name), `format` (a value →
// text function for legend entries, e.g. WK.fmt.pct), `yaxis` ("y2" to draw on a secondary
// axis). Every trace carries `meta` ({monitor, metric, kind, level, value}) so tests and
// other scripts can tell overlays from data. WK.monitorList() gives the model's monitors. The monitor list is read once per refresh
// (GET /api/v1/monitors?model=M) and each monitor's judged series once per refresh
// (GET /api/v1/monitors/{name}/series?start&end).
"use strict";

(() => {
  // Judging a window reads its seasonal history, so a long series is costly: a chart shows
  // at most the latest 600 of a monitor's windows (2 days of 5-minute windows) — the band
  // and breach marks start there and say so; static thresholds still span the whole range.
  const MAX_SERIES_WINDOWS = 600;
  const LEVEL_STYLE = {
    critical: { color: "#b91c1c", dash: "dash" },
    warning: { color: "#b45309", dash: "dashdot" },
  };
  const BAND_COLOR = "rgba(124, 58, 237, 0.14)";
  const BAND_LINE = "rgba(124, 58, 237, 0.55)";

  let listCache = { key: null, promise: null };
  const seriesCache = new Map(); // `${name}|${key}|${segmentValue}` -> promise

  // One fetch per refresh: the cache key is the view's range (it moves on every refresh).
  function viewKey(ctx) {
    return `${ctx.model}|${ctx.start.toISOString()}|${ctx.end.toISOString()}`;
  }

  function monitorsOfModel(ctx) {
    const key = viewKey(ctx);
    if (listCache.key !== key) {
      seriesCache.clear();
      const url = `/api/v1/monitors?${new URLSearchParams({ model: ctx.model })}`;
      listCache = { key, promise: WK.get(url).then((got) => got.monitors || []) };
      listCache.promise.catch(() => { listCache = { key: null, promise: null }; });
    }
    return listCache.promise;
  }

  function judged(ctx, monitor, segmentValue) {
    const key = `${monitor.name}|${viewKey(ctx)}|${segmentValue || ""}`;
    if (!seriesCache.has(key)) {
      const seconds = (WK.WINDOW_MS[monitor.window] || 60000);
      const earliest = new Date(ctx.end.getTime() - (MAX_SERIES_WINDOWS - 1) * seconds);
      const start = ctx.start < earliest ? earliest : ctx.start;
      const q = new URLSearchParams({ start: start.toISOString(), end: ctx.end.toISOString() });
      if (segmentValue) q.set("segment_value", segmentValue);
      const promise = WK.get(`/api/v1/monitors/${encodeURIComponent(monitor.name)}/series?${q}`);
      promise.catch(() => seriesCache.delete(key));
      seriesCache.set(key, promise);
    }
    return seriesCache.get(key);
  }

  // Does the monitor's scope (version, segment) fit what the chart shows? Returns null when
  // its threshold does not apply to the view at all, else {note, segmentValue, bandOk}.
  function scopeOf(monitor, ctx) {
    const notes = [];
    if (monitor.version) {
      if (ctx.version && ctx.version !== monitor.version) return null;
      if (!ctx.version) notes.push(`version ${monitor.version} only`);
    } else if (ctx.version) {
      notes.push("all versions");
    }
    let segmentValue = null;
    let bandOk = true;
    if (monitor.segment) {
      const [name, value] = [monitor.segment.slice(0, monitor.segment.indexOf(":")), monitor.segment.slice(monitor.segment.indexOf(":") + 1)];
      const [ctxName, ctxValue] = ctx.segment ? [ctx.segment.slice(0, ctx.segment.indexOf(":")), ctx.segment.slice(ctx.segment.indexOf(":") + 1)] : [null, null];
      if (value === "*") {
        if (ctxName === name) segmentValue = ctxValue;
        else {
          notes.push(`each ${name}`);
          bandOk = false; // one band per value: none of them fits the whole traffic
        }
      } else if (ctx.segment) {
        if (ctx.segment !== monitor.segment) return null;
      } else {
        notes.push(`${name} = ${value} only`);
      }
    } else if (ctx.segment) {
      notes.push("all traffic");
    }
    return { note: notes.join(", "), segmentValue, bandOk };
  }

  function legendName(what, monitor, ctx, scope) {
    const extra = [`monitor ${monitor.name}`];
    if (monitor.window !== ctx.window) extra.push(`${monitor.window} windows`);
    if (scope.note) extra.push(scope.note);
    return `${what} (${extra.join(", ")})`;
  }

  function staticLines(monitor, condition, ctx, scope, opts) {
    const levels = condition.type === "static"
      ? [[condition.severity || "critical", condition.threshold]]
      : [["warning", condition.warning], ["critical", condition.critical]];
    const x = [ctx.start.toISOString(), ctx.end.toISOString()];
    return levels.map(([level, value]) => {
      const style = LEVEL_STYLE[level] || LEVEL_STYLE.critical;
      const side = condition.op === "below" ? "below" : "above";
      return {
        x, y: [value, value],
        name: legendName(`${level} ${side} ${opts.format(value)}`, monitor, ctx, scope),
        type: "scatter", mode: "lines", yaxis: opts.yaxis,
        line: { color: style.color, dash: style.dash, width: 1.5 },
        hovertemplate: `${level} threshold: ${opts.format(value)}<extra>${monitor.name}</extra>`,
        meta: { monitor: monitor.name, metric: monitor.metric, kind: "threshold", level, value },
      };
    });
  }

  function bandTraces(monitor, rows, ctx, scope, opts) {
    const x = rows.map((r) => r.window_start);
    // Every metric but R² is non-negative: a learned lower edge below 0 is drawn at 0 (the
    // verdicts are the engine's either way) rather than suggesting negative latency.
    const floor = monitor.metric === "r2" ? -Infinity : 0;
    const lower = rows.map((r) => (r.band && r.band.lower !== null && r.band.lower !== undefined ? Math.max(r.band.lower, floor) : null));
    const upper = rows.map((r) => (r.band && r.band.upper !== null && r.band.upper !== undefined ? r.band.upper : null));
    const median = rows.map((r) => (r.band && r.band.median !== null && r.band.median !== undefined ? r.band.median : null));
    if (![...lower, ...upper].some((v) => v !== null)) return [];
    const clipped = x.length && Date.parse(x[0]) > ctx.start.getTime() + 2 * (WK.WINDOW_MS[monitor.window] || 60000);
    const since = clipped ? ` since ${x[0].slice(5, 16).replace("T", " ")}` : "";
    const name = legendName(`${opts.label} band${since}`, monitor, ctx, scope);
    const group = `band-${monitor.name}`;
    const meta = (kind) => ({ monitor: monitor.name, metric: monitor.metric, kind });
    const traces = [];
    const twoSided = lower.some((v) => v !== null) && upper.some((v) => v !== null);
    if (twoSided) {
      traces.push(
        { x, y: lower, name: `${name}, lower`, type: "scatter", mode: "lines", yaxis: opts.yaxis, legendgroup: group, showlegend: false,
          line: { color: BAND_LINE, width: 1 }, connectgaps: false, hovertemplate: `band lower: %{y}<extra>${monitor.name}</extra>`, meta: meta("band_lower") },
        { x, y: upper, name, type: "scatter", mode: "lines", yaxis: opts.yaxis, legendgroup: group, fill: "tonexty", fillcolor: BAND_COLOR,
          line: { color: BAND_LINE, width: 1 }, connectgaps: false, hovertemplate: `band upper: %{y}<extra>${monitor.name}</extra>`, meta: meta("band_upper") },
      );
    } else {
      const side = upper.some((v) => v !== null) ? "upper" : "lower";
      traces.push({ x, y: side === "upper" ? upper : lower, name: `${name} (${side} edge)`, type: "scatter", mode: "lines", yaxis: opts.yaxis,
        legendgroup: group, line: { color: BAND_LINE, width: 1.5, dash: "dash" }, connectgaps: false, meta: meta(`band_${side}`) });
    }
    traces.push({ x, y: median, name: `${name}, median`, type: "scatter", mode: "lines", yaxis: opts.yaxis, legendgroup: group, showlegend: false,
      line: { color: BAND_LINE, width: 1, dash: "dot" }, connectgaps: false, hovertemplate: `band median: %{y}<extra>${monitor.name}</extra>`, meta: meta("band_median") });
    return traces;
  }

  function breachMarkers(monitor, rows, ctx, scope, opts) {
    const hits = rows.filter((r) => r.breach);
    if (!hits.length) return [];
    return [{
      x: hits.map((r) => r.window_start),
      y: hits.map((r) => r.value),
      text: hits.map((r) => r.breach),
      name: legendName("breach", monitor, ctx, scope),
      type: "scatter", mode: "markers", yaxis: opts.yaxis,
      marker: { symbol: "x-thin-open", size: 11, line: { width: 2 }, color: hits.map((r) => (LEVEL_STYLE[r.breach] || LEVEL_STYLE.critical).color) },
      hovertemplate: `%{text} breach: %{y}<extra>${monitor.name}</extra>`,
      meta: { monitor: monitor.name, metric: monitor.metric, kind: "breach" },
    }];
  }

  async function monitorOverlays(metricName, options = {}) {
    const ctx = WK.ctx;
    const names = Array.isArray(metricName) ? metricName : [metricName];
    const opts = {
      label: options.label || names[0],
      format: options.format || ((v) => WK.fmt.number(v, 3)),
      yaxis: options.yaxis || "y",
    };
    let monitors;
    try {
      monitors = await monitorsOfModel(ctx);
    } catch (err) {
      if (err instanceof WK.ApiError) return []; // the chart still draws; the header shows errors
      throw err;
    }
    const watching = monitors.filter((m) => names.includes(m.metric) && m.enabled !== false && m.model === ctx.model);
    const traces = [];
    for (const monitor of watching) {
      const scope = scopeOf(monitor, ctx);
      if (!scope) continue;
      const condition = monitor.condition || {};
      if (condition.type === "static" || condition.type === "multi_level") {
        traces.push(...staticLines(monitor, condition, ctx, scope, opts));
      }
      let got;
      try {
        got = await judged(ctx, monitor, scope.segmentValue);
      } catch (err) {
        if (err instanceof WK.ApiError) continue;
        throw err;
      }
      // One series, or (name:* without a chosen value) the first value's: markers only make
      // sense for a series the chart shows, so only then.
      const series = (got.series || []).find((s) => (scope.segmentValue ? s.segment_value === scope.segmentValue : true));
      if (!series) continue;
      const rows = series.windows || [];
      if (condition.type === "dynamic" && scope.bandOk) traces.push(...bandTraces(monitor, rows, ctx, scope, opts));
      if (scope.bandOk || scope.segmentValue) traces.push(...breachMarkers(monitor, rows, ctx, scope, opts));
    }
    return traces;
  }

  // The model's monitors (as GET /api/v1/monitors?model= lists them), read once per refresh;
  // [] when the list cannot be read.
  WK.monitorList = () => monitorsOfModel(WK.ctx).catch((err) => {
    if (err instanceof WK.ApiError) return [];
    throw err;
  });
  WK.monitorOverlays = monitorOverlays;
})();
