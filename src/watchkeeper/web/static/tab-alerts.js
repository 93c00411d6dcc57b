// Alerts tab: this model's alerts in the range as a timeline (one row per monitor series,
// bars from start to resolution or now, with each transition marked), a table with every
// alert's transitions, acknowledge and silence buttons (admin key), and the action runs that
// wait for a person's approval.
"use strict";

(() => {
  const el = WK.el;
  const fmt = WK.fmt;
  const scope = document.body.dataset.scope || "";
  const keyName = document.body.dataset.keyName || "";
  const isAdmin = scope === "admin";
  const NEEDS_ADMIN = `Needs an admin key: you are signed in with a ${scope || "read"} key.`;

  // Colour, symbol and word for each severity/status: colour is never the only signal.
  const SEVERITY_SYMBOL = { critical: "▲", warning: "●", info: "◆" };
  const BAR_COLORS = {
    "firing:critical": "#cf222e",
    "firing:warning": "#d4a72c",
    "pending:critical": "#f4a3a8",
    "pending:warning": "#f2dc8d",
    "resolved:critical": "#a8b1bb",
    "resolved:warning": "#c8cfd6",
    "cleared:critical": "#d0d7de",
    "cleared:warning": "#d0d7de",
  };
  const TRANSITION_SYMBOL = {
    pending: "circle-open",
    firing: "triangle-up",
    escalated: "triangle-up-open",
    deescalated: "triangle-down-open",
    resolved: "circle",
    cleared: "x",
    acknowledged: "star",
    renotify: "diamond-open",
    no_data: "square-open",
  };
  const isOpen = (a) => a.status === "pending" || a.status === "firing";

  // State kept across refreshes (the open silence form, expanded transition lists).
  const state = { silenceFor: null, busy: false, lastAlerts: [], selected: Number(new URLSearchParams(location.search).get("alert")) || null };
  const WINDOW_SECONDS = { s: 1, m: 60, h: 3600, d: 86400 };
  // Judging a window reads its seasonal history, so a long series is costly: the chart shows
  // at most 600 of the monitor's windows, ending a little after the alert ended.
  const MAX_WINDOWS = 600;

  function num(v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return fmt.none;
    if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  // "2026-11-30 22:38" (UTC, as the column headers say).
  const short = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) : fmt.none);

  function rowLabel(a) {
    return a.segment_value ? `${a.monitor} · ${a.segment || "segment"}=${a.segment_value}` : a.monitor;
  }

  function severityBadge(sev) {
    if (!sev) return el("span", { class: "muted" }, fmt.none);
    return el("span", { class: `badge sev-${sev}` }, `${SEVERITY_SYMBOL[sev] || "●"} ${sev}`);
  }

  function statusBadge(a) {
    const cls = a.status === "firing" ? `sev-${a.severity || "warning"}` : a.status === "pending" ? "sev-info" : "ok";
    const word = { firing: "◉ firing", pending: "◌ pending", resolved: "✓ resolved", cleared: "✓ cleared" }[a.status] || a.status;
    return el("span", { class: `badge ${cls}`, dataset: { status: a.status } }, word);
  }

  // What the alert's value was judged against, from its latest transition with a context.
  function judged(a) {
    const withContext = [...(a.transitions || [])].reverse().find((t) => t.context && Object.keys(t.context).length);
    const value = num(a.last_value);
    if (!withContext) return value;
    const c = withContext.context;
    const word = (op) => (op === "below" ? "<" : ">");
    if (c.threshold !== undefined) return `${value} vs ${word(c.op)} ${num(c.threshold)}`;
    if (c.warning !== undefined) return `${value} vs warning ${word(c.op)} ${num(c.warning)}, critical ${word(c.op)} ${num(c.critical)}`;
    if (c.band) {
      if (c.armed === false) return `${value} (band not armed${c.reason ? ": " + c.reason : ""})`;
      const { lower, upper, median } = c.band;
      const band = lower === null ? `≤ ${num(upper)}` : upper === null ? `≥ ${num(lower)}` : `${num(lower)} … ${num(upper)}`;
      return `${value} vs band ${band} (median ${num(median)})`;
    }
    return value;
  }

  function endOf(a, now) {
    return a.resolved_at ? new Date(a.resolved_at) : now;
  }

  function silenceFor(a, silences) {
    return silences.find((s) =>
      (!s.model || s.model === a.model) &&
      (!s.monitor || s.monitor === a.monitor) &&
      (!s.severity || s.severity === a.severity) &&
      Object.entries(s.labels || {}).every(([k, v]) => (a.labels || {})[k] === v));
  }

  // This model's alerts that overlap the range: every open one, and those changed since start.
  async function loadAlerts(ctx) {
    const base = { model: ctx.model, limit: "1000" };
    const [open, recent] = await Promise.all([
      WK.get(`/api/v1/alerts?${new URLSearchParams({ ...base, status: "open" })}`),
      WK.get(`/api/v1/alerts?${new URLSearchParams({ ...base, since: ctx.start.toISOString() })}`),
    ]);
    const byId = new Map();
    for (const a of [...open.alerts, ...recent.alerts]) byId.set(a.id, a);
    let alerts = [...byId.values()].filter((a) => new Date(a.started_at) < ctx.end && (!a.resolved_at || new Date(a.resolved_at) >= ctx.start));
    if (ctx.version) alerts = alerts.filter((a) => !a.version || a.version === ctx.version);
    if (ctx.segment) {
      const [name, value] = ctx.segment.split(":");
      alerts = alerts.filter((a) => !a.segment || (a.segment === name && (!a.segment_value || a.segment_value === value)));
    }
    // Open first (critical before warning), then the most recent.
    const rank = (a) => (a.status === "firing" ? 0 : a.status === "pending" ? 2 : 4) + (isOpen(a) && a.severity !== "critical" ? 1 : 0);
    alerts.sort((x, y) => rank(x) - rank(y) || Date.parse(y.started_at) - Date.parse(x.started_at) || y.id - x.id);
    return alerts;
  }

  // ---- the timeline -----------------------------------------------------------------------
  function drawTimeline(ctx, alerts) {
    const plotDiv = WK.chartCard("alert-timeline", "Alert timeline",
      "One row per monitor series. Bars run from when an alert started to when it resolved (or now); markers are its transitions — hover for the cause.");
    const timelineCard = plotDiv.closest(".card");
    timelineCard.classList.add("wide");
    const filters = [ctx.version && `version ${ctx.version}`, ctx.segment && `segment ${ctx.segment.replace(":", " = ")}`].filter(Boolean);
    timelineCard.querySelector(".help").textContent = "One row per monitor series. Bars run from when an alert started to when it resolved (or now); markers are its transitions — hover for the cause." +
      (filters.length ? ` Filtered to ${filters.join(" and ")}: alerts of monitors that watch every version or segment are kept.` : "");
    const now = new Date(Math.min(Date.now(), ctx.end.getTime()));
    // Each row's label says where its series stands now (its newest alert), in words.
    const latest = new Map();
    for (const a of alerts) {
      const seen = latest.get(rowLabel(a));
      if (!seen || Date.parse(a.started_at) > Date.parse(seen.started_at)) latest.set(rowLabel(a), a);
    }
    const rowText = (label) => {
      const a = latest.get(label);
      return isOpen(a) ? `${label}  <b>${SEVERITY_SYMBOL[a.severity] || "●"} ${a.severity} ${a.status}</b>` : `${label}  ✓ ${a.status}`;
    };
    const rows = [...latest.keys()].sort().reverse();
    const groups = new Map();
    for (const a of alerts) {
      const sev = a.severity || "warning";
      const key = `${a.status}:${sev}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(a);
    }
    const traces = [];
    for (const [key, list] of groups) {
      const [status, sev] = key.split(":");
      const label = `${SEVERITY_SYMBOL[sev] || "●"} ${sev} · ${status}`;
      traces.push({
        type: "bar",
        orientation: "h",
        name: label,
        y: list.map(rowLabel),
        base: list.map((a) => new Date(Math.max(Date.parse(a.started_at), ctx.start.getTime())).toISOString()),
        x: list.map((a) => Math.max(endOf(a, now) - Math.max(Date.parse(a.started_at), ctx.start.getTime()), 1000)),
        text: list.map(() => label),
        textposition: "inside",
        insidetextanchor: "start",
        textangle: 0,
        textfont: { color: status === "firing" && sev === "critical" ? "#ffffff" : "#1b1f24" },
        marker: {
          color: BAR_COLORS[key] || "#8c959f",
          line: { color: sev === "critical" ? "#a40e26" : "#7d4e00", width: 1 },
          pattern: status === "pending" ? { shape: "/", fgcolor: "#57606a", size: 6 } : undefined,
        },
        customdata: list.map((a) => [a.id, a.metric, fmt.time(a.started_at), a.resolved_at ? fmt.time(a.resolved_at) : "still open", fmt.duration((endOf(a, now) - Date.parse(a.started_at)) / 1000), judged(a)]),
        hovertemplate: "<b>alert %{customdata[0]}</b> · %{customdata[1]}<br>" + label +
          "<br>started %{customdata[2]}<br>ended %{customdata[3]} (%{customdata[4]})<br>%{customdata[5]}<extra></extra>",
        width: 0.6,
      });
    }
    const marks = new Map();
    for (const a of alerts) {
      for (const t of a.transitions || []) {
        const at = Date.parse(t.at);
        if (at < ctx.start.getTime() || at > ctx.end.getTime()) continue;
        if (!marks.has(t.kind)) marks.set(t.kind, []);
        marks.get(t.kind).push([a, t]);
      }
    }
    for (const [kind, list] of marks) {
      traces.push({
        type: "scatter",
        mode: "markers",
        name: `${kind} (transition)`,
        legendgroup: "transitions",
        x: list.map(([, t]) => t.at),
        y: list.map(([a]) => rowLabel(a)),
        marker: { symbol: TRANSITION_SYMBOL[kind] || "circle", size: 11, color: "#1b1f24", line: { width: 1.5, color: "#1b1f24" } },
        customdata: list.map(([a, t]) => [a.id, fmt.time(t.at), t.cause || "", num(t.value)]),
        hovertemplate: `<b>${kind}</b> · alert %{customdata[0]}<br>%{customdata[1]}<br>value %{customdata[3]}<br>%{customdata[2]}<extra></extra>`,
      });
    }
    const height = Math.max(260, 170 + rows.length * 44);
    WK.plot(plotDiv, traces, {
      height,
      barmode: "overlay",
      hovermode: "closest",
      margin: { l: 24, r: 24, t: 24, b: 48 },
      yaxis: { type: "category", categoryorder: "array", categoryarray: rows, tickvals: rows, ticktext: rows.map(rowText), automargin: true, rangemode: undefined, showgrid: false },
      uniformtext: { mode: "hide", minsize: 11 },
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 12 } },
      annotations: alerts.length ? [] : [{ text: "No alerts in this range.", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 15, color: "#57606a" } }],
    });
    plotDiv.style.minHeight = `${height}px`;
    plotDiv.dataset.alerts = JSON.stringify(alerts.map((a) => a.id));
    plotDiv.setAttribute("aria-label", `Alert timeline: ${alerts.length} alert(s) in ${rows.length} series`);
  }

  // ---- the table --------------------------------------------------------------------------
  const card = (id, title, help) => WK.bodyCard(id, title, help, "alerts-card");

  function button(text, attrs, onclick) {
    const disabled = !isAdmin || attrs.disabled;
    const title = !isAdmin ? NEEDS_ADMIN : attrs.title;
    return el("button", { type: "button", class: "secondary small", ...attrs, disabled: disabled || null, title, "aria-disabled": disabled ? "true" : null, onclick: disabled ? null : onclick }, text);
  }

  async function act(fn, what) {
    if (state.busy) return;
    state.busy = true;
    try {
      await fn();
      WK.status(`${what}.`);
    } catch (err) {
      WK.showError(err);
      return;
    } finally {
      state.busy = false;
    }
    // A refresh already under way skips this one: ask again shortly after, too.
    setTimeout(() => WK.refresh(), 1500);
    await WK.refresh();
  }

  function transitionsTable(a) {
    return el("table", { class: "data transitions" },
      el("thead", {}, el("tr", {}, ["Window (UTC)", "Change", "Severity", "Value", "Samples", "Cause"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, (a.transitions || []).map((t) => el("tr", { dataset: { kind: t.kind } },
        el("td", { class: "when" }, short(t.at)),
        el("td", {}, t.kind),
        el("td", {}, t.severity || fmt.none),
        el("td", { class: "num" }, num(t.value)),
        el("td", { class: "num" }, t.samples === null || t.samples === undefined ? fmt.none : fmt.int(t.samples)),
        el("td", {}, t.cause || "")))));
  }

  function alertRows(a, silences, now, open) {
    const silence = silenceFor(a, silences);
    const ack = a.acknowledged;
    const canAck = isOpen(a) && !ack;
    const actions = el("div", { class: "row-actions" },
      canAck && button("Acknowledge", {
        "data-action": "ack", title: `Acknowledge alert ${a.id}: its re-notifications stop`,
        "aria-label": `Acknowledge alert ${a.id} (${rowLabel(a)})`,
      }, () => act(() => WK.send("POST", `/api/v1/alerts/${a.id}/ack`, { by: keyName || "dashboard" }), `Alert ${a.id} acknowledged`)),
      button("Silence…", { "data-action": "silence", title: `Silence notifications of monitor ${a.monitor} on ${a.model}`, "aria-label": `Silence monitor ${a.monitor} of ${a.model}` },
        () => openSilenceForm(a)),
    );
    const row = el("tr", { class: "alert-row", dataset: { alertId: String(a.id), status: a.status, severity: a.severity || "" } },
      el("td", { "data-col": "status" }, el("div", { class: "badges" }, statusBadge(a), severityBadge(a.severity))),
      el("td", { "data-col": "monitor" }, el("strong", {}, a.monitor), a.segment_value ? ` (${a.segment}=${a.segment_value})` : null,
        el("span", { class: "sub" }, el("code", { "data-col": "metric" }, a.metric), ` per ${a.window}`, a.version ? `, version ${a.version}` : null, ` · alert ${a.id}`)),
      el("td", { "data-col": "value" }, el("span", { class: "judged" }, judged(a)), el("button", {
        type: "button", class: "link-button", "data-chart": String(a.id), "aria-pressed": state.selected === a.id ? "true" : "false",
        title: `Chart what monitor ${a.monitor} judged, with its threshold or band`, onclick: () => selectAlert(a.id),
      }, "Chart ▸")),
      el("td", { "data-col": "started", class: "when" }, short(a.started_at), el("span", { class: "sub" }, fmt.ago(a.started_at))),
      el("td", { "data-col": "duration", class: "num" }, fmt.duration((endOf(a, now) - Date.parse(a.started_at)) / 1000), isOpen(a) ? el("span", { class: "sub" }, "so far") : null),
      el("td", { "data-col": "acknowledged" }, ack ? [el("span", {}, `✓ ${ack.by || "someone"}`), el("span", { class: "sub" }, short(ack.at)), ack.comment ? el("span", { class: "sub" }, ack.comment) : null] : el("span", { class: "muted" }, "no"),
        silence ? el("span", { class: "sub silenced" }, `Silenced until ${short(silence.ends_at)}`) : null),
      el("td", { "data-col": "actions" }, actions),
    );
    const details = el("details", { open: open || null, dataset: { alertId: String(a.id) } },
      el("summary", {}, `Transitions of alert ${a.id} (${(a.transitions || []).length})`), transitionsTable(a));
    const sub = el("tr", { class: "transitions-row", dataset: { alertId: String(a.id) } }, el("td", { colspan: "7" }, details));
    return [row, sub];
  }

  function drawTable(ctx, alerts, silences) {
    const body = card("alerts-list", "Alerts", "Open alerts first, then the most recent. Values are the alert's last window against its threshold or learned band.");
    const now = new Date(Math.min(Date.now(), ctx.end.getTime()));
    const key = JSON.stringify([alerts, silences.map((s) => [s.id, s.ends_at]), Math.floor(Date.now() / 60000)]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    const openDetails = new Set([...body.querySelectorAll("details[open]")].map((d) => d.dataset.alertId));
    const children = [];
    if (!isAdmin) children.push(el("p", { class: "notice notice-info", id: "alerts-readonly" }, `Acknowledge, silence and approve are disabled. ${NEEDS_ADMIN}`));
    if (!alerts.length) {
      children.push(el("p", { class: "muted", id: "no-alerts" }, "No alerts for this model in this range."));
    } else {
      children.push(el("div", { class: "table-scroll" }, el("table", { class: "data alerts-table", id: "alerts-table" },
        el("thead", {}, el("tr", {}, ["Status and severity", "Monitor and metric", "Value vs condition", "Started (UTC)", "Duration", "Acknowledged / silenced", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, alerts.flatMap((a) => alertRows(a, silences, now, openDetails.has(String(a.id))))))));
    }
    body.replaceChildren(...children);
  }

  // ---- the silence form -------------------------------------------------------------------
  function openSilenceForm(a) {
    state.silenceFor = a;
    drawSilenceForm();
    const form = document.getElementById("silence-form");
    if (form) form.querySelector("select").focus();
  }

  function drawSilenceForm() {
    let box = document.getElementById("silence-box");
    const a = state.silenceFor;
    if (!a) {
      if (box) box.remove();
      return;
    }
    if (box && box.dataset.monitor === a.monitor) return;
    if (box) box.remove();
    const form = el("form", { id: "silence-form", class: "inline-form" },
      el("p", { class: "scope" }, "Silence notifications of monitor ", el("strong", {}, a.monitor), " on model ", el("strong", {}, a.model),
        " (every series and severity of it). Alerts are still evaluated and recorded."),
      el("label", { for: "silence-duration" }, "For"),
      el("select", { id: "silence-duration", name: "duration" }, ["1h", "4h", "24h"].map((d) => el("option", { value: d }, { "1h": "1 hour", "4h": "4 hours", "24h": "24 hours" }[d]))),
      el("label", { for: "silence-comment" }, "Comment"),
      el("input", { id: "silence-comment", name: "comment", type: "text", maxlength: "2000", placeholder: "why (optional)", size: "40" }),
      el("button", { type: "submit" }, "Create silence"),
      el("button", { type: "button", class: "secondary", onclick: () => { state.silenceFor = null; drawSilenceForm(); } }, "Cancel"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = {
        model: a.model,
        monitor: a.monitor,
        duration: form.querySelector("#silence-duration").value,
        comment: form.querySelector("#silence-comment").value || null,
        created_by: keyName || "dashboard",
      };
      act(async () => {
        await WK.send("POST", "/api/v1/silences", body);
        state.silenceFor = null;
        drawSilenceForm();
      }, `Silenced ${a.monitor} for ${body.duration}`);
    });
    box = el("section", { class: "card wide silence-box", id: "silence-box", "aria-labelledby": "silence-title", dataset: { monitor: a.monitor } },
      el("h2", { id: "silence-title" }, `Silence ${a.monitor}`), form);
    const list = document.getElementById("alerts-list");
    document.getElementById("panel").insertBefore(box, list);
  }

  // ---- runs awaiting approval -----------------------------------------------------------
  function drawApprovals(runs) {
    const body = card("approvals", "Actions awaiting approval",
      "Automated responses of this model's alerts that a person must approve before they run.");
    const key = JSON.stringify(runs.map((r) => [r.id, r.status]));
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    if (!runs.length) {
      body.replaceChildren(el("p", { class: "muted", id: "no-approvals" }, "None waiting."));
      return;
    }
    body.replaceChildren(el("table", { class: "data", id: "approvals-table" },
      el("thead", {}, el("tr", {}, ["Run", "Action", "Alert", "Monitor", "On", "Requested (UTC)", "Decide"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, runs.map((r) => el("tr", { dataset: { runId: String(r.id) } },
        el("td", {}, String(r.id)),
        el("td", {}, el("strong", {}, r.action), el("span", { class: "sub" }, r.type)),
        el("td", {}, r.alert_id === null ? fmt.none : String(r.alert_id)),
        el("td", {}, r.monitor || fmt.none),
        el("td", {}, `${r.kind || fmt.none} transition`),
        el("td", { class: "when" }, short(r.requested_at)),
        el("td", {}, el("div", { class: "row-actions" },
          button("Approve", { "data-action": "approve", "aria-label": `Approve run ${r.id} of ${r.action}` },
            () => act(() => WK.send("POST", `/api/v1/actions/runs/${r.id}/approve`, { by: keyName || null }), `Run ${r.id} approved`)),
          button("Reject", { "data-action": "reject", "aria-label": `Reject run ${r.id} of ${r.action}` },
            () => act(() => WK.send("POST", `/api/v1/actions/runs/${r.id}/reject`, { by: keyName || null, reason: "rejected from the dashboard" }), `Run ${r.id} rejected`)))))))));
  }

  // ---- what the selected alert's monitor judged: the metric against its threshold or band --
  function selectAlert(id) {
    state.selected = id;
    WK.setParam("alert", String(id));
    for (const b of document.querySelectorAll("button[data-chart]")) b.setAttribute("aria-pressed", b.dataset.chart === String(id) ? "true" : "false");
    WK.refresh();
  }

  function windowSeconds(w) {
    const m = /^(\d+)([smhd])$/.exec(w || "");
    return m ? Number(m[1]) * WINDOW_SECONDS[m[2]] : 60;
  }

  async function drawMonitorChart(ctx, alerts) {
    const a = alerts.find((x) => x.id === state.selected) || alerts[0];
    const plotDiv = WK.chartCard("monitor-series", "What the monitor judged",
      "The selected alert's metric per monitor window, with the threshold(s) or the learned band it was judged against; the shaded span is the alert. Pick another alert with its Chart button.");
    const card = plotDiv.closest(".card");
    card.classList.add("wide");
    const title = card.querySelector("h2");
    if (!a) {
      title.textContent = "What the monitor judged";
      WK.plot(plotDiv, [], { annotations: [{ text: "No alert in this range.", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 15, color: "#57606a" } }] });
      return;
    }
    const heading = `What monitor ${a.monitor} judged: ${a.metric}${a.segment_value ? ` (${a.segment}=${a.segment_value})` : ""}, alert ${a.id}`;
    const step = windowSeconds(a.window) * 1000;
    const alertEnd = a.resolved_at ? Date.parse(a.resolved_at) + 60 * step : ctx.end.getTime();
    const seriesEnd = new Date(Math.min(ctx.end.getTime(), Math.max(alertEnd, ctx.start.getTime() + MAX_WINDOWS * step)));
    const start = new Date(Math.max(ctx.start.getTime(), seriesEnd.getTime() - (MAX_WINDOWS - 1) * step));
    const q = new URLSearchParams({ start: start.toISOString(), end: seriesEnd.toISOString() });
    const help = card.querySelector(".help");
    const clipped = start > ctx.start || seriesEnd < ctx.end ? ` Shown: ${MAX_WINDOWS.toLocaleString("en-US")} ${a.window} windows around the alert (${short(start.toISOString())} – ${short(seriesEnd.toISOString())} UTC).` : "";
    help.textContent = "The selected alert's metric per monitor window, with the threshold(s) or the learned band it was judged against; the shaded span is the alert. Pick another alert with its Chart button." + clipped;
    if (a.segment_value) q.set("segment_value", a.segment_value);
    let data;
    try {
      data = await WK.get(`/api/v1/monitors/${encodeURIComponent(a.monitor)}/series?${q}`);
    } catch (err) {
      if (!(err instanceof WK.ApiError) || err.status !== 404) throw err;
      title.textContent = heading;
      WK.plot(plotDiv, [], { annotations: [{ text: `Monitor ${a.monitor} no longer exists.`, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { size: 15, color: "#57606a" } }] });
      return;
    }
    const rows = (data.series[0] || { windows: [] }).windows;
    const x = rows.map((r) => r.window_start);
    const traces = [];
    const line = (name, key, color, dash, extra = {}) => ({
      x, y: rows.map((r) => (typeof key === "function" ? key(r) : r[key])), name, type: "scatter", mode: "lines",
      line: { color, width: 1.5, dash, shape: "hv" }, connectgaps: false, ...extra,
    });
    const c = data.condition || {};
    if (c.type === "dynamic") {
      traces.push(line("band lower", (r) => (r.band ? r.band.lower : null), "rgba(29,78,216,0.5)", "dot", { showlegend: false, hoverinfo: "skip" }));
      traces.push(line("learned band", (r) => (r.band ? r.band.upper : null), "rgba(29,78,216,0.5)", "dot", { fill: rows.some((r) => r.band && r.band.lower !== null) ? "tonexty" : "none", fillcolor: "rgba(29,78,216,0.10)" }));
      traces.push(line("band median", (r) => (r.band ? r.band.median : null), "#1d4ed8", "dash", { line: { width: 1, color: "#1d4ed8", dash: "dash", shape: "hv" } }));
    } else if (c.type === "multi_level") {
      traces.push(line(`warning (${c.op} ${num(c.warning)})`, "warning", "#bf8700", "dash"));
      traces.push(line(`critical (${c.op} ${num(c.critical)})`, "critical", "#cf222e", "dash"));
    } else if (c.type === "static") {
      traces.push(line(`threshold (${c.op} ${num(c.threshold)})`, "threshold", "#cf222e", "dash"));
    }
    traces.push({ x, y: rows.map((r) => r.value), name: a.metric, type: "scatter", mode: "lines+markers", line: { color: "#1b1f24", width: 2 }, marker: { size: 5 } });
    for (const sev of ["critical", "warning"]) {
      const hit = rows.filter((r) => r.breach === sev);
      if (hit.length) {
        traces.push({ x: hit.map((r) => r.window_start), y: hit.map((r) => r.value), name: `breach (${sev})`, type: "scatter", mode: "markers",
          marker: { symbol: sev === "critical" ? "triangle-up" : "circle", size: 11, color: sev === "critical" ? "#cf222e" : "#d4a72c", line: { color: "#1b1f24", width: 1 } } });
      }
    }
    const end = a.resolved_at || new Date(Math.min(Date.now(), ctx.end.getTime())).toISOString();
    WK.plot(plotDiv, traces, {
      yaxis: { title: { text: a.metric }, rangemode: "normal" },
      shapes: [{ type: "rect", xref: "x", yref: "paper", x0: a.started_at, x1: end, y0: 0, y1: 1, fillcolor: a.severity === "critical" ? "rgba(207,34,46,0.08)" : "rgba(212,167,44,0.12)", line: { width: 0 }, layer: "below" }],
      // The span's label sits inside the plot: left-aligned at its start, or right-aligned at
      // its end when the span lies in the right half.
      annotations: [(() => {
        const right = (Date.parse(a.started_at) + Date.parse(end)) / 2 > (start.getTime() + ctx.end.getTime()) / 2;
        return { text: `alert ${a.id}: ${a.status}`, x: right ? end : a.started_at, xanchor: right ? "right" : "left", xref: "x", y: 1, yref: "paper", yanchor: "bottom", showarrow: false, font: { size: 12, color: "#57606a" } };
      })()],
    });
    title.textContent = heading; // after the chart: the heading always names what is drawn
    plotDiv.dataset.alertId = String(a.id);
  }

  WK.onRefresh(async (ctx) => {
    const [alerts, silences, runs] = await Promise.all([
      loadAlerts(ctx),
      WK.get("/api/v1/silences?active=true").then((r) => r.silences),
      WK.get(`/api/v1/actions/runs?${new URLSearchParams({ model: ctx.model, status: "awaiting_approval", limit: "100" })}`).then((r) => r.runs),
    ]);
    state.lastAlerts = alerts;
    drawTimeline(ctx, alerts);
    await drawMonitorChart(ctx, alerts);
    drawSilenceForm();
    drawTable(ctx, alerts, silences);
    drawApprovals(runs);
  });
})();
