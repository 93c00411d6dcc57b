// Traces page: every trace sent over OpenTelemetry, newest first, with filters (model, status,
// minimum latency and cost, flagged by an evaluator, conversation id, time range) and the page
// ("older") all kept in the URL, so a link shows the same list. Each row opens the trace view.
//
// API calls: GET /api/v1/models (the model filter's options), then
//   GET /api/v1/traces?start=&end=&model=&status=&min_latency_ms=&min_cost_usd=
//       &evaluator=&flagged=true&conversation_id=&limit=&cursor=
"use strict";

(() => {
  const el = WK.el;
  const fmt = WK.fmt;
  const PAGE_SIZE = 50;
  const STATUSES = [["", "Any status"], ["ok", "✓ ok"], ["error", "✕ error"]];
  const EVALUATORS = [
    ["groundedness", "groundedness (hallucination)"], ["pii", "PII"], ["refusal", "refusal"], ["toxicity", "toxicity"],
    ["exact_match", "exact match"], ["token_f1", "token F1"], ["semantic_similarity", "semantic similarity"],
    ["judge_groundedness", "judge: groundedness"], ["judge_relevance", "judge: relevance"],
    ["judge_correctness", "judge: correctness"], ["human", "human feedback"],
  ];
  // URL parameter -> the API's parameter of the same name (evaluator adds flagged=true).
  const TEXT_FILTERS = ["min_latency_ms", "min_cost_usd", "conversation_id"];
  const ALL_FILTERS = ["model", "status", "evaluator", ...TEXT_FILTERS];

  const usd = (v) => (typeof v === "number" && v !== 0 && Math.abs(v) < 0.0001 ? "< $0.0001" : fmt.usd(v, v >= 100 ? 2 : 4));
  const short = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : fmt.none);

  function durationText(ms) {
    if (typeof ms !== "number" || !Number.isFinite(ms)) return fmt.none;
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    if (ms < 1000) return `${ms.toFixed(0)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }

  function filters() {
    const p = new URLSearchParams(location.search);
    const got = {};
    for (const name of ALL_FILTERS) got[name] = (p.get(name) || "").trim();
    if (!STATUSES.some(([v]) => v === got.status)) got.status = "";
    got.cursor = p.get("cursor") || "";
    return got;
  }

  // Navigate to the list with these filters (a new history entry; the first page again).
  function apply(changes) {
    location.assign(WK.urlWith({ ...changes, cursor: null }));
  }

  // ---- the filter form: built once, options refreshed when the model list changes ---------
  function buildFilters(models) {
    const f = filters();
    const modelOptions = [["", "All models"], ...models.map((m) => [m, m])];
    if (f.model && !models.includes(f.model)) modelOptions.push([f.model, f.model]);
    let box = document.getElementById("trace-filters");
    const key = JSON.stringify(modelOptions);
    if (box && box.dataset.key === key) return;
    const select = (id, name, options, value) =>
      el("select", { id, name }, options.map(([v, t]) => el("option", { value: v, selected: v === value || null }, t)));
    const field = (...children) => el("span", { class: "filter-field" }, ...children);
    const form = el("form", { class: "page-filters trace-filters", id: "trace-filters-form", role: "search", "aria-label": "Filter traces" },
      field(el("label", { for: "filter-model" }, "Model"), select("filter-model", "model", modelOptions, f.model)),
      field(el("label", { for: "filter-status" }, "Status"), select("filter-status", "status", STATUSES, f.status)),
      field(el("label", { for: "filter-evaluator" }, "Flagged by"),
        select("filter-evaluator", "evaluator", [["", "Any (or none)"], ...EVALUATORS], f.evaluator)),
      field(el("label", { for: "filter-min_latency_ms" }, "Min duration (ms)"),
        el("input", { id: "filter-min_latency_ms", name: "min_latency_ms", type: "number", min: "0", step: "any", inputmode: "decimal", value: f.min_latency_ms, class: "short" })),
      field(el("label", { for: "filter-min_cost_usd" }, "Min cost (USD)"),
        el("input", { id: "filter-min_cost_usd", name: "min_cost_usd", type: "number", min: "0", step: "any", inputmode: "decimal", value: f.min_cost_usd, class: "short" })),
      field(el("label", { for: "filter-conversation_id" }, "Conversation"),
        el("input", { id: "filter-conversation_id", name: "conversation_id", type: "text", spellcheck: "false", value: f.conversation_id, placeholder: "conversation id" })),
      field(el("button", { type: "submit", class: "secondary small", id: "apply-filters" }, "Apply filters"),
        ALL_FILTERS.some((n) => f[n]) ? el("a", { href: WK.urlWith(Object.fromEntries([...ALL_FILTERS, "cursor"].map((n) => [n, null]))), id: "clear-filters" }, "Clear filters") : null),
    );
    // Selects apply at once; the number and text boxes on Apply (or Enter).
    form.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT") apply({ [event.target.name]: event.target.value || null });
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const changes = {};
      for (const name of ALL_FILTERS) changes[name] = form.elements[name].value.trim() || null;
      apply(changes);
    });
    if (!box) {
      box = el("section", { class: "card wide", id: "trace-filters", "aria-label": "Filters" });
      document.getElementById("panel").prepend(box);
    }
    box.dataset.key = key;
    box.replaceChildren(form);
  }

  // ---- the list --------------------------------------------------------------------------
  function query(ctx, f) {
    const q = new URLSearchParams({ start: ctx.start.toISOString(), end: ctx.end.toISOString(), limit: String(PAGE_SIZE) });
    for (const name of ["model", "status", ...TEXT_FILTERS]) if (f[name]) q.set(name, f[name]);
    if (f.evaluator) {
      q.set("evaluator", f.evaluator);
      q.set("flagged", "true");
    }
    if (f.cursor) q.set("cursor", f.cursor);
    return q;
  }

  function statusBadge(status) {
    if (status === "error") return el("span", { class: "badge sev-critical", dataset: { status } }, "✕ error");
    return el("span", { class: "badge ok", dataset: { status: status || "unset" } }, "✓ ok");
  }

  function flagBadges(flags) {
    const entries = Object.entries(flags || {}).filter(([, n]) => n > 0);
    if (!entries.length) return el("span", { class: "muted" }, "none");
    return el("span", { class: "badges" }, entries.map(([name, n]) =>
      el("span", { class: "badge sev-warning", dataset: { flag: name }, title: `${n} call(s) flagged by ${name}` }, `▲ ${name}${n > 1 ? ` ×${n}` : ""}`)));
  }

  function emptyState(f, ctx) {
    const filtered = ALL_FILTERS.some((n) => f[n]);
    const origin = location.origin;
    return el("div", { class: "empty-traces", id: "no-traces" },
      el("p", {}, filtered
        ? `No traces match these filters between ${fmt.time(ctx.start.toISOString())} and ${fmt.time(ctx.end.toISOString())}. Clear a filter or pick a longer range.`
        : `No traces between ${fmt.time(ctx.start.toISOString())} and ${fmt.time(ctx.end.toISOString())}. Pick a longer range, or send some:`),
      filtered ? null : [
        el("p", {}, "Point any OpenTelemetry OTLP/HTTP trace exporter at this server, with an ingest key (", el("code", {}, "watchkeeper keys create --scope ingest --data-dir DIR"), "):"),
        el("pre", {}, el("code", {}, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=${origin}/v1/traces\nOTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <ingest key>"`)),
        el("p", { class: "help" }, "Protobuf or JSON, gzip or not. Every span is kept; spans following the GenAI or OpenInference conventions also become LLM calls of the model named by the resource's ", el("code", {}, "service.name"), "."),
      ]);
  }

  function row(t) {
    const href = `/traces/${encodeURIComponent(t.trace_id)}`;
    const tokens = (t.input_tokens || 0) + (t.output_tokens || 0);
    return el("tr", { dataset: { traceId: t.trace_id, status: t.status || "unset" } },
      el("td", { class: "when" }, short(t.start), el("span", { class: "sub" }, fmt.ago(t.start))),
      el("td", { "data-col": "root" }, el("a", { href, class: "trace-link" }, t.root_name || "(no root span)"),
        el("span", { class: "sub" }, el("code", {}, t.trace_id.slice(0, 16)), t.conversation_id ? ` · conversation ${t.conversation_id}` : null)),
      el("td", { "data-col": "models" }, (t.models || []).length ? (t.models || []).join(", ") : el("span", { class: "muted" }, fmt.none)),
      el("td", { class: "num", "data-col": "duration" }, durationText(t.duration_ms)),
      el("td", { class: "num", "data-col": "spans" }, fmt.int(t.spans)),
      el("td", { class: "num", "data-col": "llm_calls" }, fmt.int(t.llm_calls)),
      el("td", { class: "num", "data-col": "tokens" }, tokens ? fmt.int(tokens) : fmt.none,
        tokens ? el("span", { class: "sub" }, `${fmt.int(t.input_tokens || 0)} in · ${fmt.int(t.output_tokens || 0)} out`) : null),
      el("td", { class: "num", "data-col": "cost" }, typeof t.cost_usd === "number" ? usd(t.cost_usd) : fmt.none),
      el("td", { "data-col": "status" }, statusBadge(t.status)),
      el("td", { "data-col": "flags" }, flagBadges(t.flags)));
  }

  function drawList(ctx, f, answer) {
    const body = WK.bodyCard("traces-list", "Traces", "Newest first. Open a trace for its spans as a waterfall, the prompt and response of each LLM call and its evaluator results.");
    const key = JSON.stringify([answer, Math.floor(Date.now() / 60000)]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    const traces = answer.traces || [];
    const paging = el("nav", { class: "pager", "aria-label": "Pages" },
      f.cursor ? el("a", { href: WK.urlWith({ cursor: null }), id: "newest-page" }, "← Newest") : null,
      answer.next_cursor ? el("a", { href: WK.urlWith({ cursor: answer.next_cursor }), id: "older-page", rel: "next" }, "Older →") : null);
    const summary = el("p", { class: "muted", id: "traces-count" },
      `${traces.length} trace(s)${f.cursor ? " on this page" : ""}${answer.next_cursor ? ", more are older" : ""}.`);
    if (!traces.length) {
      body.replaceChildren(emptyState(f, ctx), paging);
      return;
    }
    const head = ["Start (UTC)", "Root span", "Models", "Duration", "Spans", "LLM calls", "Tokens", "Cost", "Status", "Flagged by"];
    const numeric = new Set(["Duration", "Spans", "LLM calls", "Tokens", "Cost"]);
    body.replaceChildren(summary, el("div", { class: "table-scroll" }, el("table", { class: "data", id: "traces-table" },
      el("caption", { class: "visually-hidden" }, "Traces, newest first"),
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col", class: numeric.has(h) ? "num" : null }, h)))),
      el("tbody", {}, traces.map(row)))), paging);
  }

  WK.onRefresh(async (ctx) => {
    const f = filters();
    document.getElementById("traces-range").textContent = ctx.live
      ? `Last ${WK.PRESETS[ctx.preset].label}`
      : `${fmt.time(ctx.start.toISOString())} – ${fmt.time(ctx.end.toISOString())}`;
    const [models, answer] = await Promise.all([
      WK.get("/api/v1/models"),
      WK.get(`/api/v1/traces?${query(ctx, f)}`),
    ]);
    buildFilters(models.models.map((m) => m.name));
    drawList(ctx, f, answer);
  });
})();
