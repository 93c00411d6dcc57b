// Alerts page: every model's alerts (open first, then recent) with filters kept in the URL,
// each row linking to its model's Alerts tab; and the silences, with expire buttons.
"use strict";

(() => {
  const el = WK.el;
  const fmt = WK.fmt;
  const scope = document.body.dataset.scope || "";
  const isAdmin = scope === "admin";
  const NEEDS_ADMIN = `Needs an admin key: you are signed in with a ${scope || "read"} key.`;
  const SEVERITY_SYMBOL = { critical: "▲", warning: "●", info: "◆" };
  const STATUSES = [["", "Open, then recent"], ["open", "Open (firing or pending)"], ["firing", "Firing"], ["pending", "Pending"], ["resolved", "Resolved"], ["cleared", "Cleared"]];
  const SEVERITIES = [["", "Any severity"], ["critical", "▲ critical"], ["warning", "● warning"]];
  const isOpen = (a) => a.status === "pending" || a.status === "firing";
  const short = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) : fmt.none);
  let busy = false;

  function num(v) {
    if (typeof v !== "number" || !Number.isFinite(v)) return fmt.none;
    if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  function judged(a) {
    const t = [...(a.transitions || [])].reverse().find((x) => x.context && Object.keys(x.context).length);
    const value = num(a.last_value);
    if (!t) return value;
    const c = t.context;
    const word = (op) => (op === "below" ? "<" : ">");
    if (c.threshold !== undefined) return `${value} vs ${word(c.op)} ${num(c.threshold)}`;
    if (c.warning !== undefined) return `${value} vs warning ${word(c.op)} ${num(c.warning)}, critical ${word(c.op)} ${num(c.critical)}`;
    if (c.band) {
      if (c.armed === false) return `${value} (band not armed)`;
      const { lower, upper } = c.band;
      const band = lower === null ? `≤ ${num(upper)}` : upper === null ? `≥ ${num(lower)}` : `${num(lower)} … ${num(upper)}`;
      return `${value} vs band ${band}`;
    }
    return value;
  }

  function params() {
    const p = new URLSearchParams(location.search);
    const pick = (name, allowed) => (allowed.some(([v]) => v === p.get(name)) ? p.get(name) : "");
    return { status: pick("status", STATUSES), severity: pick("severity", SEVERITIES), model: p.get("model") || "" };
  }

  // ---- filters (kept in the URL: a link shows the same list) ------------------------------
  function buildFilters(models) {
    const p = params();
    const modelOptions = [["", "All models"], ...models.map((m) => [m, m])];
    if (p.model && !models.includes(p.model)) modelOptions.push([p.model, p.model]);
    WK.filterBar("alert-filters", "Filter alerts", JSON.stringify(modelOptions), [
      ["filter-status", "Status", STATUSES, p.status],
      ["filter-model", "Model", modelOptions, p.model],
      ["filter-severity", "Severity", SEVERITIES, p.severity],
    ], { id: "alert-filters-form" });
  }

  const card = WK.bodyCard;

  async function loadAlerts(p) {
    const base = { limit: "500" };
    if (p.model) base.model = p.model;
    let alerts;
    if (p.status) {
      alerts = (await WK.get(`/api/v1/alerts?${new URLSearchParams({ ...base, status: p.status })}`)).alerts;
    } else {
      const [open, recent] = await Promise.all([
        WK.get(`/api/v1/alerts?${new URLSearchParams({ ...base, status: "open" })}`),
        WK.get(`/api/v1/alerts?${new URLSearchParams({ ...base, limit: "200" })}`),
      ]);
      const byId = new Map();
      for (const a of [...open.alerts, ...recent.alerts]) byId.set(a.id, a);
      alerts = [...byId.values()];
    }
    if (p.severity) alerts = alerts.filter((a) => a.severity === p.severity);
    const rank = (a) => (a.status === "firing" ? 0 : a.status === "pending" ? 2 : 4) + (isOpen(a) && a.severity !== "critical" ? 1 : 0);
    alerts.sort((x, y) => rank(x) - rank(y) || Date.parse(y.started_at) - Date.parse(x.started_at) || y.id - x.id);
    return alerts;
  }

  function statusBadge(a) {
    const cls = a.status === "firing" ? `sev-${a.severity || "warning"}` : a.status === "pending" ? "sev-info" : "ok";
    const word = { firing: "◉ firing", pending: "◌ pending", resolved: "✓ resolved", cleared: "✓ cleared" }[a.status] || a.status;
    return el("span", { class: `badge ${cls}` }, word);
  }

  function silenceFor(a, silences) {
    const now = Date.now();
    return silences.find((s) => Date.parse(s.starts_at) <= now && Date.parse(s.ends_at) > now &&
      (!s.model || s.model === a.model) && (!s.monitor || s.monitor === a.monitor) && (!s.severity || s.severity === a.severity) &&
      Object.entries(s.labels || {}).every(([k, v]) => (a.labels || {})[k] === v));
  }

  // The model's Alerts tab with this alert charted, over a range that shows when it started.
  function tabLink(a) {
    const hour = 3600 * 1000;
    const started = Date.parse(a.started_at);
    const age = Date.now() - started;
    const q = new URLSearchParams();
    if (age < 50 * 60 * 1000) q.set("range", "1h");
    else if (age < 23 * hour) q.set("range", "24h");
    else if (age < 6.5 * 24 * hour) q.set("range", "7d");
    else if (age < 29 * 24 * hour) q.set("range", "30d");
    else {
      const end = a.resolved_at ? Date.parse(a.resolved_at) + hour : Date.now();
      q.set("range", "custom");
      q.set("start", new Date(started - hour).toISOString());
      q.set("end", new Date(end).toISOString());
    }
    q.set("alert", String(a.id));
    return `/models/${encodeURIComponent(a.model)}/alerts?${q}`;
  }

  function drawAlerts(alerts, p, silences) {
    const body = card("alerts-all", "Alerts", "Open alerts first (firing, then pending; critical first), then the most recent. Each links to its model's Alerts tab, where you can acknowledge and silence it.");
    const key = JSON.stringify([alerts, silences, Math.floor(Date.now() / 60000)]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    const now = Date.now();
    const what = [p.status ? STATUSES.find(([v]) => v === p.status)[1].toLowerCase() : null, p.model ? `model ${p.model}` : null, p.severity || null].filter(Boolean).join(", ");
    const summary = el("p", { class: "muted", id: "alerts-count" }, `${alerts.length} alert(s)${what ? ` — ${what}` : ""}; ${alerts.filter(isOpen).length} open.`);
    if (!alerts.length) {
      body.replaceChildren(summary, el("p", { id: "no-alerts" }, "No alerts match these filters."));
      return;
    }
    const rows = alerts.map((a) => {
      const tab = tabLink(a);
      const end = a.resolved_at ? Date.parse(a.resolved_at) : now;
      const ack = a.acknowledged;
      return el("tr", { dataset: { alertId: String(a.id), status: a.status, severity: a.severity || "", model: a.model } },
        el("td", {}, statusBadge(a)),
        el("td", {}, a.severity ? el("span", { class: `badge sev-${a.severity}` }, `${SEVERITY_SYMBOL[a.severity] || "●"} ${a.severity}`) : fmt.none),
        el("td", {}, el("a", { href: tab, class: "model-link" }, a.model)),
        el("td", {}, el("a", { href: tab }, el("strong", {}, a.monitor)), a.segment_value ? ` (${a.segment}=${a.segment_value})` : null,
          el("span", { class: "sub" }, el("code", {}, a.metric), ` per ${a.window} · alert ${a.id}`)),
        el("td", {}, judged(a)),
        el("td", { class: "when" }, short(a.started_at), el("span", { class: "sub" }, fmt.ago(a.started_at))),
        el("td", { class: "num" }, fmt.duration((end - Date.parse(a.started_at)) / 1000), isOpen(a) ? el("span", { class: "sub" }, "so far") : null),
        el("td", { "data-col": "acknowledged" }, ack ? [`✓ ${ack.by || "someone"}`, el("span", { class: "sub" }, short(ack.at))] : el("span", { class: "muted" }, "no"),
          isOpen(a) && silenceFor(a, silences) ? el("span", { class: "sub silenced" }, `Silenced until ${short(silenceFor(a, silences).ends_at)}`) : null));
    });
    body.replaceChildren(summary, el("div", { class: "table-scroll" }, el("table", { class: "data", id: "alerts-table" },
      el("thead", {}, el("tr", {}, ["Status", "Severity", "Model", "Monitor and metric", "Value vs condition", "Started (UTC)", "Duration", "Acknowledged / silenced"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))));
  }

  function drawSilences(silences) {
    const body = card("silences", "Silences", "Silences hold back the notifications of matching alerts; the alerts are still evaluated and recorded.");
    const now = Date.now();
    const state = (s) => (Date.parse(s.ends_at) <= now ? "expired" : Date.parse(s.starts_at) > now ? "scheduled" : "active");
    const key = JSON.stringify([silences, silences.map(state)]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    if (!silences.length) {
      body.replaceChildren(el("p", { class: "muted", id: "no-silences" }, "No silences."));
      return;
    }
    const order = { active: 0, scheduled: 1, expired: 2 };
    const sorted = [...silences].sort((x, y) => order[state(x)] - order[state(y)] || y.id - x.id);
    const matches = (s) => [s.model && `model ${s.model}`, s.monitor && `monitor ${s.monitor}`, s.severity && `severity ${s.severity}`,
      ...Object.entries(s.labels || {}).map(([k, v]) => `${k}=${v}`)].filter(Boolean).join(", ");
    const rows = sorted.map((s) => {
      const st = state(s);
      const expire = st === "expired" ? null : el("button", {
        type: "button", class: "secondary small", "data-action": "expire", disabled: isAdmin ? null : true,
        title: isAdmin ? `End silence ${s.id} now` : NEEDS_ADMIN, "aria-label": `Expire now: silence ${s.id}`,
        onclick: isAdmin ? () => expireSilence(s.id) : null,
      }, "Expire now");
      return el("tr", { dataset: { silenceId: String(s.id), state: st }, class: st === "expired" ? "muted" : null },
        el("td", {}, String(s.id)),
        el("td", {}, el("span", { class: `badge ${st === "active" ? "sev-warning" : st === "scheduled" ? "sev-info" : ""}` }, st)),
        el("td", {}, matches(s)),
        el("td", { class: "when" }, short(s.starts_at)),
        el("td", { class: "when" }, short(s.ends_at)),
        el("td", {}, s.created_by || fmt.none),
        el("td", {}, s.comment || ""),
        el("td", {}, expire));
    });
    const children = [];
    if (!isAdmin) children.push(el("p", { class: "notice notice-info" }, `Expiring silences is disabled. ${NEEDS_ADMIN}`));
    children.push(el("div", { class: "table-scroll" }, el("table", { class: "data", id: "silences-table" },
      el("thead", {}, el("tr", {}, ["Id", "State", "Matches", "From (UTC)", "Until (UTC)", "By", "Comment", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))));
    body.replaceChildren(...children);
  }

  async function expireSilence(id) {
    if (busy) return;
    busy = true;
    try {
      await WK.send("DELETE", `/api/v1/silences/${id}`);
      WK.status(`Silence ${id} expired.`);
    } catch (err) {
      WK.showError(err);
      return;
    } finally {
      busy = false;
    }
    // A refresh already under way skips this one: ask again shortly after, too.
    setTimeout(() => WK.refresh(), 1500);
    await WK.refresh();
  }

  WK.onRefresh(async () => {
    const p = params();
    const [models, alerts, silences] = await Promise.all([
      WK.get("/api/v1/models").then((r) => r.models.map((m) => m.name).sort()),
      loadAlerts(p),
      WK.get("/api/v1/silences").then((r) => r.silences),
    ]);
    buildFilters(models);
    drawAlerts(alerts, p, silences);
    drawSilences(silences);
  });
})();
