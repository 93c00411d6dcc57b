// Trace view: one trace's spans as a waterfall (one row per span, indented by its depth in
// the span tree, the bar placed at the span's start and as wide as its duration; error spans
// marked ✕), the selected span's attributes, events and — for an LLM call — its prompt,
// response, tokens, cost, time to first token and evaluator results; the trace's human
// feedback beside the automatic scores, and a feedback form (admin key).
// The selected span is kept in the URL (?span=), so a link opens the same span.
//
// API calls: GET /api/v1/traces/{trace_id}, GET /api/v1/feedback?trace_id=,
// POST /api/v1/feedback (the form).
// User text (prompt, response, attributes, comments) is only ever set as text, never as HTML.
"use strict";

(() => {
  const el = WK.el;
  const fmt = WK.fmt;
  const traceId = document.body.dataset.traceId;
  const scope = document.body.dataset.scope || "";
  const canWrite = scope === "admin" || scope === "ingest";
  const NEEDS_KEY = `Needs an admin key: you are signed in with a ${scope || "read"} key.`;
  const TTFT_ATTRIBUTE = "gen_ai.response.time_to_first_chunk"; // seconds (GenAI convention)

  const state = { spans: [], byId: new Map(), selected: new URLSearchParams(location.search).get("span"), answer: null, feedback: [], busy: false };

  const usd = (v) => (typeof v === "number" && v !== 0 && Math.abs(v) < 0.0001 ? "< $0.0001" : fmt.usd(v, v >= 100 ? 2 : 6));
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);
  const startOf = (s) => s.start_ts || s.start || null;
  const endOf = (s) => s.end_ts || s.end || null;

  function durationText(ms) {
    if (!isNum(ms)) return fmt.none;
    if (ms < 1) return `${ms.toFixed(3)} ms`;
    if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 0)} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
    return `${(ms / 60000).toFixed(1)} min`;
  }

  function num(v) {
    if (!isNum(v)) return fmt.none;
    if (v !== 0 && (Math.abs(v) >= 1e6 || Math.abs(v) < 1e-3)) return v.toExponential(2);
    return String(Number(v.toPrecision(4)));
  }

  // Milliseconds since the epoch with the sub-millisecond part an ISO time may carry.
  function ms(iso) {
    if (!iso) return NaN;
    const base = Date.parse(iso);
    const frac = /\.(\d+)/.exec(iso);
    if (!frac || frac[1].length <= 3) return base;
    return base + Number(`0.${frac[1].slice(3)}`);
  }

  // A span event's time: OTLP's nanoseconds since the epoch (or an ISO time).
  function eventTime(t) {
    if (isNum(t)) return t ? fmt.time(new Date(t / 1e6).toISOString()) : fmt.none;
    return typeof t === "string" ? fmt.time(t) : fmt.none;
  }

  function valueText(v) {
    if (v === null || v === undefined) return "null";
    if (typeof v === "string") return v;
    return JSON.stringify(v, null, typeof v === "object" ? 2 : 0);
  }

  // ---- the span tree: depth-first, children by start time --------------------------------
  function order(spans) {
    const ids = new Set(spans.map((s) => s.span_id));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
      const parent = s.parent_span_id && ids.has(s.parent_span_id) && s.parent_span_id !== s.span_id ? s.parent_span_id : null;
      if (parent === null) roots.push(s);
      else {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(s);
      }
    }
    const byStart = (a, b) => ms(startOf(a)) - ms(startOf(b)) || String(a.span_id).localeCompare(String(b.span_id));
    const out = [];
    const seen = new Set();
    const walk = (s, depth) => {
      if (seen.has(s.span_id)) return;
      seen.add(s.span_id);
      out.push({ span: s, depth });
      for (const c of (children.get(s.span_id) || []).sort(byStart)) walk(c, depth + 1);
    };
    for (const r of roots.sort(byStart)) walk(r, 0);
    for (const s of spans) if (!seen.has(s.span_id)) walk(s, 0); // a cycle: shown flat
    return out;
  }

  function ttftMs(s) {
    if (isNum(s.ttft_ms)) return s.ttft_ms;
    if (isNum(s.time_to_first_token_ms)) return s.time_to_first_token_ms;
    const attr = (s.attributes || {})[TTFT_ATTRIBUTE];
    return isNum(attr) ? attr * 1000 : null;
  }

  // ---- summary tiles ---------------------------------------------------------------------
  function drawSummary(answer, rows) {
    const spans = rows.map((r) => r.span);
    const root = rows.length ? rows[0].span : null;
    const t0 = Math.min(...spans.map((s) => ms(startOf(s))));
    const t1 = Math.max(...spans.map((s) => ms(endOf(s))));
    const llm = spans.filter((s) => s.is_llm);
    const tokensIn = llm.reduce((a, s) => a + (s.input_tokens || 0), 0);
    const tokensOut = llm.reduce((a, s) => a + (s.output_tokens || 0), 0);
    const costs = spans.map((s) => s.cost_usd).filter(isNum);
    const cost = isNum(answer.cost_usd) ? answer.cost_usd : costs.length ? costs.reduce((a, b) => a + b, 0) : null;
    const errors = spans.filter((s) => s.status === "error").length;
    const models = [...new Set(spans.map((s) => s.model).filter(Boolean))];
    const conversation = answer.conversation_id || (spans.find((s) => s.conversation_id) || {}).conversation_id || null;
    document.getElementById("trace-title").textContent = root ? root.name : "Trace";
    document.title = `${root ? root.name : "Trace"} · Trace · Watchkeeper`;
    const node = WK.tiles("trace-summary", "This trace", [
      ["start", "Started", fmt.time(new Date(t0).toISOString()), new Date(t0).toISOString(), fmt.ago(new Date(t0).toISOString())],
      ["duration_ms", "Duration", durationText(t1 - t0), t1 - t0, ""],
      ["spans", "Spans", fmt.int(spans.length), spans.length, errors ? `✕ ${errors} with an error` : "no errors"],
      ["llm_calls", "LLM calls", fmt.int(llm.length), llm.length, models.join(", ")],
      ["tokens", "Tokens", fmt.int(tokensIn + tokensOut), tokensIn + tokensOut, `${fmt.int(tokensIn)} in · ${fmt.int(tokensOut)} out`],
      ["cost_usd", "Cost", cost === null ? fmt.none : usd(cost), cost, ""],
    ]);
    let extra = node.querySelector(".trace-ids");
    if (!extra) node.append((extra = el("p", { class: "help trace-ids" })));
    extra.replaceChildren("Trace id ", el("code", {}, traceId),
      ...(conversation ? [" · conversation ", el("a", { href: `/traces?${new URLSearchParams({ conversation_id: conversation, range: "30d" })}`, id: "conversation-link" }, conversation)] : []));
  }

  // ---- the waterfall ---------------------------------------------------------------------
  function axis(total) {
    return el("div", { class: "wf-row wf-axis", "aria-hidden": "true" },
      el("span", { class: "wf-name" }, "Span"),
      el("span", { class: "wf-track" }, [0, 0.25, 0.5, 0.75, 1].map((f) =>
        el("span", { class: "wf-tick", style: `left: ${f * 100}%` }, f === 0 ? "0" : durationText(total * f)))),
      el("span", { class: "wf-dur" }, "Duration"));
  }

  function drawWaterfall(rows) {
    const body = WK.bodyCard("waterfall", "Spans", "One row per span, indented under its parent; the bar starts when the span started and is as long as it took. ✕ marks a span that ended in an error, ✦ an LLM call. Select a row (or use ↑ ↓) for its details.", "waterfall-card");
    const key = JSON.stringify(rows.map((r) => [r.span.span_id, r.depth, startOf(r.span), endOf(r.span), r.span.duration_ms, r.span.status]));
    if (body.dataset.key !== key) {
      body.dataset.key = key;
      const spans = rows.map((r) => r.span);
      const t0 = Math.min(...spans.map((s) => ms(startOf(s))));
      const t1 = Math.max(...spans.map((s) => ms(endOf(s)) || ms(startOf(s)) + (s.duration_ms || 0)));
      const total = Math.max(t1 - t0, 1e-3);
      const list = el("ol", { class: "waterfall", id: "waterfall-rows", "aria-label": "Spans of this trace" });
      for (const { span: s, depth } of rows) {
        const duration = isNum(s.duration_ms) ? s.duration_ms : ms(endOf(s)) - ms(startOf(s));
        const left = ((ms(startOf(s)) - t0) / total) * 100;
        const width = (Math.max(duration, 0) / total) * 100;
        const error = s.status === "error";
        const button = el("button", {
          type: "button",
          class: `wf-row${error ? " error" : ""}${s.is_llm ? " llm" : ""}`,
          "aria-pressed": "false",
          dataset: { spanId: s.span_id, depth: String(depth) },
          onclick: () => select(s.span_id, true),
        },
        el("span", { class: "wf-name", style: `padding-left: ${depth * 1.1}rem` },
          error ? el("span", { class: "wf-mark error-mark", title: "error" }, "✕ ") : null,
          s.is_llm ? el("span", { class: "wf-mark llm-mark", title: "LLM call" }, "✦ ") : null,
          el("span", { class: "wf-label" }, s.name || "(unnamed)"),
          el("span", { class: "wf-service" }, s.service || s.model || "")),
        el("span", { class: "wf-track" },
          el("span", { class: "wf-bar", style: `left: ${left}%; width: ${width}%`, dataset: { durationMs: String(duration) } })),
        el("span", { class: "wf-dur" }, durationText(duration), error ? el("span", { class: "visually-hidden" }, ", error") : null));
        list.append(el("li", {}, button));
      }
      list.addEventListener("keydown", onKey);
      body.replaceChildren(axis(total), list);
    }
    markSelected();
  }

  function rowButtons() {
    return [...document.querySelectorAll("#waterfall-rows button.wf-row")];
  }

  function onKey(event) {
    const buttons = rowButtons();
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    let next = null;
    if (event.key === "ArrowDown") next = Math.min(at + 1, buttons.length - 1);
    else if (event.key === "ArrowUp") next = Math.max(at - 1, 0);
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = buttons.length - 1;
    if (next === null) return;
    event.preventDefault();
    buttons[next].focus();
    select(buttons[next].dataset.spanId, true);
  }

  function markSelected() {
    for (const b of rowButtons()) {
      const on = b.dataset.spanId === state.selected;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.classList.toggle("selected", on);
    }
  }

  function select(spanId, byUser) {
    if (!state.byId.has(spanId)) return;
    state.selected = spanId;
    if (byUser) WK.setParam("span", spanId);
    markSelected();
    drawDetail();
    drawFeedbackForm();
  }

  // ---- the selected span -----------------------------------------------------------------
  function table(id, head, rows, cls = "data") {
    return el("div", { class: "table-scroll" }, el("table", { class: cls, id },
      el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, rows)));
  }

  function evaluationsTable(evaluations, id) {
    if (!evaluations || !evaluations.length) return el("p", { class: "muted", id: `${id}-none` }, "No evaluator results for this call (yet: evaluators run a few seconds after a call arrives, on the configured sample).");
    return table(id, ["Evaluator", "Score", "Flagged", "Label", "Source", "Detail"], evaluations.map((e) =>
      el("tr", { dataset: { evaluator: e.evaluator, flagged: String(!!e.flagged) } },
        el("td", {}, el("code", {}, e.evaluator)),
        el("td", { class: "num" }, num(e.score)),
        el("td", {}, e.flagged ? el("span", { class: "badge sev-warning" }, "▲ flagged") : el("span", { class: "badge ok" }, "✓ no")),
        el("td", {}, e.label || fmt.none),
        el("td", {}, e.source || fmt.none),
        el("td", { class: "detail" }, e.detail === null || e.detail === undefined || e.detail === "" ? fmt.none
          : el("code", { class: "detail-json" }, compact(typeof e.detail === "string" ? parseMaybe(e.detail) : e.detail))))));
  }

  const compact = (v) => (typeof v === "string" ? v : JSON.stringify(v));

  function parseMaybe(text) {
    try {
      return JSON.parse(text);
    } catch (err) {
      return text;
    }
  }

  function drawDetail() {
    const s = state.byId.get(state.selected);
    const body = WK.bodyCard("span-detail", "Selected span", null, "span-detail-card");
    if (!s) {
      body.replaceChildren(el("p", { class: "muted" }, "Select a span above."));
      return;
    }
    const key = JSON.stringify(s);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    const parent = s.parent_span_id ? state.byId.get(s.parent_span_id) : null;
    const facts = [
      ["Name", s.name],
      ["Kind", s.kind || fmt.none],
      ["Service", s.service || fmt.none],
      ["Model (Watchkeeper)", s.model ? el("a", { href: `/models/${encodeURIComponent(s.model)}/llm` }, s.model) : fmt.none],
      ["Status", s.status === "error" ? el("span", { class: "badge sev-critical" }, `✕ error${s.status_message ? ": " + s.status_message : ""}`) : el("span", { class: "badge ok" }, `✓ ${s.status || "unset"}`)],
      ["Started", fmt.time(startOf(s))],
      ["Duration", durationText(s.duration_ms)],
      ["Span id", el("code", {}, s.span_id)],
      ["Parent", s.parent_span_id ? (parent ? el("button", { type: "button", class: "link-button", onclick: () => select(parent.span_id, true) }, parent.name) : el("code", {}, `${s.parent_span_id} (not in this trace)`)) : "none (a root span)"],
    ];
    const parts = [el("h3", { id: "span-name" }, s.name || "(unnamed)"),
      el("dl", { class: "facts" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))];
    if (s.is_llm) {
      const attrs = s.attributes || {};
      const requested = attrs["gen_ai.request.model"] || attrs["llm.model_name"] || null;
      const answered = attrs["gen_ai.response.model"] || null;
      parts.push(el("h3", {}, "LLM call"),
        el("dl", { class: "facts", id: "llm-facts" },
          el("dt", {}, "Provider model"), el("dd", {}, [requested, answered && answered !== requested ? `answered by ${answered}` : null].filter(Boolean).join(", ") || fmt.none),
          el("dt", {}, "Tokens"), el("dd", { dataset: { tokensIn: String(s.input_tokens ?? ""), tokensOut: String(s.output_tokens ?? "") } },
            `${fmt.int(s.input_tokens)} in · ${fmt.int(s.output_tokens)} out`),
          el("dt", {}, "Cost"), el("dd", { id: "llm-cost" }, isNum(s.cost_usd) ? usd(s.cost_usd) : `${fmt.none} (no price for this model)`),
          el("dt", {}, "Time to first token"), el("dd", { id: "llm-ttft" }, isNum(ttftMs(s)) ? durationText(ttftMs(s)) : fmt.none)),
        el("div", { class: "llm-text-pair" },
          el("section", { "aria-labelledby": "prompt-title" }, el("h4", { id: "prompt-title" }, "Prompt"),
            s.prompt ? el("pre", { class: "llm-text", id: "span-prompt" }, s.prompt) : el("p", { class: "muted", id: "span-prompt-none" }, "Not captured (the instrumentation did not record message content).")),
          el("section", { "aria-labelledby": "response-title" }, el("h4", { id: "response-title" }, "Response"),
            s.response ? el("pre", { class: "llm-text", id: "span-response" }, s.response) : el("p", { class: "muted", id: "span-response-none" }, "Not captured."))),
        el("h4", {}, "Evaluator results"),
        evaluationsTable(s.evaluations, "span-evaluations"));
    }
    const attrs = Object.entries(s.attributes || {}).sort(([a], [b]) => a.localeCompare(b));
    parts.push(el("h3", {}, "Attributes"), attrs.length
      ? table("span-attributes", ["Key", "Value"], attrs.map(([k, v]) => el("tr", { dataset: { key: k } }, el("th", { scope: "row" }, el("code", {}, k)), el("td", {}, el("pre", { class: "inline-pre" }, valueText(v))))))
      : el("p", { class: "muted" }, "No attributes."));
    const events = s.events || [];
    parts.push(el("h3", {}, "Events"), events.length
      ? table("span-events", ["Time (UTC)", "Name", "Attributes"], events.map((e) => el("tr", {},
        el("td", { class: "when" }, eventTime(e.time)), el("td", {}, e.name), el("td", {}, el("pre", { class: "inline-pre" }, valueText(e.attributes || {}))))))
      : el("p", { class: "muted" }, "No events."));
    const resource = Object.entries(s.resource || {});
    if (resource.length) {
      parts.push(el("details", { class: "resource" }, el("summary", {}, `Resource (${resource.length} attributes)${s.scope ? ` · scope ${s.scope}` : ""}`),
        table("span-resource", ["Key", "Value"], resource.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, el("code", {}, k)), el("td", {}, valueText(v)))))));
    }
    body.replaceChildren(...parts);
  }

  // ---- automatic scores beside human feedback --------------------------------------------
  function drawScores() {
    const body = WK.bodyCard("trace-scores", "Automatic scores and human feedback", "Every evaluator result of this trace's LLM calls, beside what people said about it.");
    const evals = [];
    for (const s of state.spans) for (const e of s.evaluations || []) evals.push([s, e]);
    const key = JSON.stringify([evals.map(([s, e]) => [s.span_id, e]), state.feedback]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    const auto = evals.length
      ? table("trace-evaluations", ["Call", "Evaluator", "Score", "Flagged", "Label"], evals.map(([s, e]) =>
        el("tr", { dataset: { evaluator: e.evaluator, spanId: s.span_id } },
          el("td", {}, el("button", { type: "button", class: "link-button", onclick: () => select(s.span_id, true) }, s.name)),
          el("td", {}, el("code", {}, e.evaluator)), el("td", { class: "num" }, num(e.score)),
          el("td", {}, e.flagged ? el("span", { class: "badge sev-warning" }, "▲ flagged") : el("span", { class: "badge ok" }, "✓ no")),
          el("td", {}, e.label || fmt.none))))
      : el("p", { class: "muted" }, "No evaluator results yet.");
    const human = state.feedback.length
      ? table("trace-feedback", ["When (UTC)", "Verdict", "Comment and correction"], state.feedback.map((f) => {
        const call = f.event_id ? state.byId.get(f.event_id) : null;
        const verdict = [f.thumbs === "up" ? "▲ thumbs up" : f.thumbs === "down" ? "▼ thumbs down" : null, isNum(f.score) ? `score ${num(f.score)}` : null].filter(Boolean).join(", ");
        return el("tr", { dataset: { feedbackId: String(f.id ?? "") } },
          el("td", { class: "when" }, fmt.time(f.created_at || f.timestamp), el("span", { class: "sub" }, f.by ? `by ${f.by}` : "by —"),
            el("span", { class: "sub" }, call ? `on ${call.name}` : "on the whole trace")),
          el("td", {}, verdict || fmt.none),
          el("td", {}, f.comment ? el("span", { class: "user-text" }, f.comment) : el("span", { class: "muted" }, "no comment"),
            f.corrected_answer ? el("span", { class: "sub" }, "Corrected answer:") : null,
            f.corrected_answer ? el("pre", { class: "inline-pre" }, f.corrected_answer) : null));
      }))
      : el("p", { class: "muted", id: "no-feedback" }, "No feedback on this trace yet.");
    body.replaceChildren(el("div", { class: "side-by-side" },
      el("section", { "aria-labelledby": "auto-title" }, el("h3", { id: "auto-title" }, "Evaluators"), auto),
      el("section", { "aria-labelledby": "human-title" }, el("h3", { id: "human-title" }, "People"), human)));
  }

  // ---- the feedback form -----------------------------------------------------------------
  function drawFeedbackForm() {
    const body = WK.bodyCard("feedback", "Give feedback", "Tied to this trace and, when you pick one, to one LLM call: it shows up beside the automatic scores and as the human evaluator; a corrected answer becomes the call's ground truth.");
    const calls = state.spans.filter((s) => s.is_llm);
    const chosen = state.byId.get(state.selected);
    const target = chosen && chosen.is_llm ? chosen.span_id : calls.length ? calls[calls.length - 1].span_id : "";
    let form = document.getElementById("feedback-form");
    const key = JSON.stringify(calls.map((s) => s.span_id));
    if (form && form.dataset.key === key) {
      if (!form.dataset.touched) form.elements.call.value = target;
      return;
    }
    const disabled = !canWrite || null;
    form = el("form", { id: "feedback-form", class: "feedback-form", "aria-describedby": canWrite ? null : "feedback-why" },
      canWrite ? null : el("p", { class: "notice notice-info", id: "feedback-why" }, NEEDS_KEY),
      el("label", { for: "feedback-call" }, "About"),
      el("select", { id: "feedback-call", name: "call", disabled },
        el("option", { value: "" }, "The whole trace"),
        calls.map((s) => el("option", { value: s.span_id, selected: s.span_id === target || null }, `LLM call: ${s.name} (${s.span_id.slice(0, 8)})`))),
      el("fieldset", { class: "thumbs", disabled },
        el("legend", {}, "Was the answer good?"),
        el("label", {}, el("input", { type: "radio", name: "thumbs", value: "up", id: "thumbs-up" }), " ▲ Good (thumbs up)"),
        el("label", {}, el("input", { type: "radio", name: "thumbs", value: "down", id: "thumbs-down" }), " ▼ Bad (thumbs down)")),
      el("label", { for: "feedback-comment" }, "Comment"),
      el("textarea", { id: "feedback-comment", name: "comment", rows: "2", maxlength: "4000", disabled }),
      el("label", { for: "feedback-corrected" }, "Corrected answer (optional)"),
      el("textarea", { id: "feedback-corrected", name: "corrected_answer", rows: "3", maxlength: "20000", disabled }),
      el("div", { class: "row-actions" },
        el("button", { type: "submit", id: "feedback-submit", disabled, title: canWrite ? null : NEEDS_KEY }, "Send feedback"),
        el("span", { id: "feedback-result", role: "status", "aria-live": "polite" })));
    form.dataset.key = key;
    form.addEventListener("change", (event) => {
      if (event.target.name === "call") form.dataset.touched = "true";
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendFeedback(form);
    });
    body.replaceChildren(form);
  }

  async function sendFeedback(form) {
    if (!canWrite || state.busy) return;
    const result = document.getElementById("feedback-result");
    const thumbs = form.elements.thumbs.value;
    const comment = form.elements.comment.value.trim();
    const corrected = form.elements.corrected_answer.value.trim();
    if (!thumbs && !comment && !corrected) {
      result.textContent = "Pick good or bad, or write a comment.";
      return;
    }
    const span = state.byId.get(form.elements.call.value);
    const fallback = state.spans.find((s) => s.is_llm && s.model) || state.spans.find((s) => s.model) || {};
    const body = { trace_id: traceId, model: (span && span.model) || fallback.model || undefined };
    if (span) body.event_id = span.span_id;
    if (thumbs) body.thumbs = thumbs;
    if (comment) body.comment = comment;
    if (corrected) body.corrected_answer = corrected;
    const who = document.body.dataset.keyName;
    if (who) body.by = who;
    state.busy = true;
    result.textContent = "Sending…";
    try {
      await WK.send("POST", "/api/v1/feedback", body);
      result.textContent = "✓ Thank you: feedback recorded.";
      form.reset();
      delete form.dataset.touched;
      await loadFeedback();
      drawScores();
    } catch (err) {
      result.textContent = `✕ Not recorded: ${err.message}`;
    } finally {
      state.busy = false;
    }
  }

  async function loadFeedback() {
    const got = await WK.get(`/api/v1/feedback?${new URLSearchParams({ trace_id: traceId })}`);
    state.feedback = got.feedback || [];
  }

  function notFound(err) {
    document.getElementById("trace-title").textContent = "Trace not found";
    const body = WK.bodyCard("trace-missing", "No such trace", null);
    body.replaceChildren(el("p", {}, `The server has no spans of trace ${traceId}: `, err.message, ". Spans arrive a few seconds after the exporter sends them; check the id, or ",
      el("a", { href: "/traces" }, "find the trace in the list"), "."));
  }

  WK.onRefresh(async () => {
    let answer;
    try {
      answer = await WK.get(`/api/v1/traces/${encodeURIComponent(traceId)}`);
    } catch (err) {
      if (err.status === 404) {
        notFound(err);
        return;
      }
      throw err;
    }
    state.answer = answer;
    if (Array.isArray(answer.feedback)) state.feedback = answer.feedback;
    else await loadFeedback();
    const rows = order(answer.spans || []);
    state.spans = rows.map((r) => r.span);
    state.byId = new Map(state.spans.map((s) => [s.span_id, s]));
    if (!state.byId.has(state.selected)) {
      const firstLlm = state.spans.find((s) => s.is_llm);
      state.selected = firstLlm ? firstLlm.span_id : state.spans.length ? state.spans[0].span_id : null;
    }
    drawSummary(answer, rows);
    drawWaterfall(rows);
    drawDetail();
    drawScores();
    drawFeedbackForm();
  });
})();
