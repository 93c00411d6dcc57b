// LLM tab: tokens in and out, cost (total, per call and p95) and time to first token over
// the chosen range, range totals as tiles, evaluator rates and scores over time (each only
// when the model has results for it; otherwise a card saying how to turn evaluators on), the
// worst calls (flagged or lowest-scored, each linking to its trace), and monitor
// thresholds/bands on the charts (wk-monitors.js). A model without LLM fields gets a short
// card saying what to send instead of empty charts.
//
// API calls: GET /api/v1/models/{m}/metrics (window=all for the tiles and for which
// evaluator metrics have data; the chart window for the series), GET
// /api/v1/models/{m}/evaluations?flagged=true&evaluator=&limit= (worst calls, with the
// tab's version and segment filters).
"use strict";

(() => {
  // Evaluator metrics, in three charts: [metric, legend name, what turns it on].
  const RATES = [
    ["hallucination_rate", "hallucination", "groundedness evaluator (needs retrieved context)"],
    ["pii_rate", "PII", "pii evaluator"],
    ["refusal_rate", "refusal", "refusal evaluator"],
    ["toxicity_rate", "toxicity", "toxicity evaluator"],
    ["judge_fail_rate", "judge fail", "LLM judge (evaluators.judge)"],
    ["thumbs_down_rate", "thumbs down", "feedback (POST /api/v1/feedback)"],
  ];
  const SCORES = [
    ["groundedness", "groundedness", "groundedness evaluator (needs retrieved context)"],
    ["judge_groundedness", "judge: groundedness", "LLM judge, rubric groundedness"],
    ["judge_relevance", "judge: relevance", "LLM judge, rubric relevance"],
    ["judge_correctness", "judge: correctness", "LLM judge, rubric correctness"],
    ["human_score", "human", "feedback (POST /api/v1/feedback)"],
  ];
  const REFERENCE = [
    ["exact_match", "exact match", "actual answers (labels) for calls"],
    ["token_f1", "token F1", "actual answers (labels) for calls"],
    ["semantic_similarity", "semantic similarity", "actual answers (labels) for calls"],
  ];
  const EVAL_NAMES = [...RATES, ...SCORES, ...REFERENCE].map(([n]) => n);
  const NAMES = ["count", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "ttft_p50", "ttft_p95", "ttft_p99", "cost_per_call", "cost_p95", ...EVAL_NAMES];
  const TOTALS = [...NAMES, "ttft_mean", "evaluated_count"];
  const WORST_LIMIT = 20;
  const EVALUATORS = ["groundedness", "pii", "refusal", "toxicity", "exact_match", "token_f1", "semantic_similarity",
    "judge_groundedness", "judge_relevance", "judge_correctness", "human"];
  const usd = (v) => (typeof v === "number" && v !== 0 && Math.abs(v) < 0.0001 ? "< $0.0001" : WK.fmt.usd(v, v >= 100 ? 2 : 4));
  const line = (x, y, name, style = {}) => ({ x, y, name, type: "scatter", mode: "lines", connectgaps: false, line: { width: 2, ...style } });
  const EXAMPLE = {
    prompt: "Where is my parcel?",
    response: "It left the depot at 9:40 …",
    input_tokens: 412,
    output_tokens: 96,
    time_to_first_token_ms: 230,
    latency_ms: 1840,
    cost_usd: 0.00071,
  };

  const section = WK.section;
  const tiles = (items) => WK.tiles("totals", "Over the whole range", items);

  // Shown instead of the charts when there is nothing LLM-like to draw.
  function explain(ctx, isLlm) {
    for (const card of document.querySelectorAll("#panel > .card")) if (card.id !== "card-no-llm") card.hidden = true;
    const node = section("no-llm", isLlm ? "No LLM calls in this range" : "No LLM fields for this model", "wide");
    node.setAttribute("role", "note");
    const key = isLlm ? "llm" : "other";
    if (node.dataset.key === key) return;
    node.dataset.key = key;
    node.replaceChildren(node.querySelector("h2"));
    node.append(
      WK.el("p", {}, isLlm
        ? `${ctx.model} logged no events between ${WK.fmt.time(ctx.start.toISOString())} and ${WK.fmt.time(ctx.end.toISOString())}. Pick a longer range, or check that the service still sends them.`
        : `${ctx.model} is a ${ctx.detail && ctx.detail.task ? ctx.detail.task + " " : ""}model whose events carry no token counts, cost or time to first token, so there is nothing to chart here.`),
      WK.el("p", {}, "To see tokens, cost and time to first token, log these fields with each LLM call (all optional; a model whose events carry tokens is an LLM model):"),
      WK.el("ul", {},
        WK.el("li", {}, WK.el("code", {}, "input_tokens"), ", ", WK.el("code", {}, "output_tokens"), ": tokens of the prompt and of the answer"),
        WK.el("li", {}, WK.el("code", {}, "time_to_first_token_ms"), ": milliseconds until the first token streamed back"),
        WK.el("li", {}, WK.el("code", {}, "cost_usd"), ": what the call cost"),
        WK.el("li", {}, WK.el("code", {}, "prompt"), ", ", WK.el("code", {}, "response"), ": the text, kept with the event")),
      WK.el("p", { class: "help" }, "For example, with the SDK: ", WK.el("code", {}, "monitor.log(prompt=…, response=…, input_tokens=412, output_tokens=96, time_to_first_token_ms=230, cost_usd=0.00071)"),
        ", or as one event of ", WK.el("code", {}, `POST /api/v1/models/${ctx.model}/predictions?task=llm`), ":"),
      WK.el("pre", { class: "help" }, WK.el("code", {}, JSON.stringify({ events: [EXAMPLE] }, null, 2))),
    );
  }

  WK.onRefresh(async (ctx) => {
    const isLlm = !!(ctx.detail && ctx.detail.task === "llm");
    const all = await WK.get(ctx.api("metrics", { names: TOTALS.join(","), window: "all" }));
    const total = Object.fromEntries(TOTALS.map((n) => [n, all.metrics[n][0]]));
    const hasData = total.total_tokens > 0 || total.cost_usd > 0 || typeof total.ttft_p50 === "number";
    if (!hasData) {
      explain(ctx, isLlm);
      return;
    }
    for (const card of document.querySelectorAll("#panel > .card")) card.hidden = card.id === "card-no-llm";

    tiles([
      ["count", "Calls", WK.fmt.int(total.count), total.count, ""],
      ["input_tokens", "Tokens in", WK.fmt.int(total.input_tokens), total.input_tokens, total.count ? `${WK.fmt.number(total.input_tokens / total.count, 0)} per call` : ""],
      ["output_tokens", "Tokens out", WK.fmt.int(total.output_tokens), total.output_tokens, total.count ? `${WK.fmt.number(total.output_tokens / total.count, 0)} per call` : ""],
      ["cost_usd", "Cost", usd(total.cost_usd), total.cost_usd, total.count ? `${usd(total.cost_usd / total.count)} per call` : ""],
      ["cost_p95", "Cost per call p95", usd(total.cost_p95), total.cost_p95, `mean ${usd(total.cost_per_call)}`],
      ["ttft_p95", "Time to first token p95", WK.fmt.ms(total.ttft_p95, 0), total.ttft_p95, `median ${WK.fmt.ms(total.ttft_p50, 0)}`],
      ["evaluated_count", "Evaluated calls", WK.fmt.int(total.evaluated_count), total.evaluated_count,
        total.count && total.evaluated_count ? `${WK.fmt.pct(total.evaluated_count / total.count, 0)} of calls` : "by the evaluators"],
    ]);

    const data = await WK.get(ctx.api("metrics", { names: NAMES.join(","), window: ctx.window }));
    const x = data.windows;
    const m = data.metrics;
    const [tokOver, costOver, perCallOver, ttftOver] = await Promise.all([
      Promise.all([
        WK.monitorOverlays("input_tokens", { label: "tokens in", format: WK.fmt.int }),
        WK.monitorOverlays("output_tokens", { label: "tokens out", format: WK.fmt.int }),
        WK.monitorOverlays("total_tokens", { label: "total tokens", format: WK.fmt.int }),
      ]).then((l) => l.flat()),
      WK.monitorOverlays("cost_usd", { label: "cost", format: usd }),
      Promise.all([
        WK.monitorOverlays("cost_per_call", { label: "cost per call", format: usd }),
        WK.monitorOverlays("cost_p95", { label: "cost p95", format: usd }),
      ]).then((l) => l.flat()),
      Promise.all(["ttft_mean", "ttft_p50", "ttft_p95", "ttft_p99"].map((n) =>
        WK.monitorOverlays(n, { label: `TTFT ${n.slice(5)}`, format: (v) => WK.fmt.ms(v, 0) }))).then((l) => l.flat()),
    ]);

    WK.plot(WK.chartCard("tokens", "Tokens", `Tokens sent (prompt) and received (answer) per ${ctx.window} window, stacked.`), [
      { x, y: m.input_tokens, name: "tokens in", type: "bar", marker: { color: "#93c5fd" }, hovertemplate: "in: %{y:,}<extra></extra>" },
      { x, y: m.output_tokens, name: "tokens out", type: "bar", marker: { color: "#1d4ed8" }, hovertemplate: "out: %{y:,}<extra></extra>" },
      ...tokOver,
    ], { barmode: "stack", bargap: 0.15, showlegend: true, yaxis: { title: { text: `tokens per ${ctx.window}` }, tickformat: "~s" } });

    WK.plot(WK.chartCard("cost", "Cost", `What the calls of each ${ctx.window} window cost, in US dollars.`), [
      { x, y: m.cost_usd, name: "cost", type: "bar", marker: { color: "#047857" }, customdata: m.count, hovertemplate: "$%{y:.4f} (%{customdata} calls)<extra></extra>" },
      ...costOver,
    ], { bargap: 0.15, showlegend: true, yaxis: { title: { text: `USD per ${ctx.window}` }, tickprefix: "$" } });

    const ttft = WK.chartCard("ttft", "Time to first token", `p50, p95 and p99 of time_to_first_token_ms per ${ctx.window} window: how long users wait before the answer starts.`);
    ttft.closest(".card").classList.add("wide");
    WK.plot(ttft, [
      line(x, m.ttft_p50, "p50", { dash: "dot" }),
      line(x, m.ttft_p95, "p95"),
      line(x, m.ttft_p99, "p99", { dash: "dash" }),
      ...ttftOver,
    ], { yaxis: { title: { text: "time to first token (ms)" }, hoverformat: ".0f" } });

    WK.plot(WK.chartCard("cost-per-call", "Cost per call", `Mean and 95th percentile cost of one call per ${ctx.window} window (p95 over calls with a cost, ±1 %).`), [
      line(x, m.cost_per_call, "mean"),
      line(x, m.cost_p95, "p95", { dash: "dash" }),
      ...perCallOver,
    ], { yaxis: { title: { text: "USD per call" }, tickprefix: "$", hoverformat: ".6f" } });

    await drawEvaluators(ctx, total, x, m);
    await drawWorst(ctx);
  });

  // ---- evaluators --------------------------------------------------------------------------
  const has = (total, name) => typeof total[name] === "number";

  // A chart of the group's metrics that have results in the range; none: the card is hidden.
  async function evalChart(id, title, help, group, total, x, m, yaxis) {
    const shown = group.filter(([n]) => has(total, n));
    const card = document.getElementById(`card-${id}`);
    if (!shown.length) {
      if (card) card.hidden = true;
      return false;
    }
    const over = (await Promise.all(shown.map(([n, label]) =>
      WK.monitorOverlays(n, { label, format: (v) => WK.fmt.pct(v, 1) })))).flat();
    const missing = group.filter(([n]) => !has(total, n));
    const plotDiv = WK.chartCard(id, title, help);
    const node = plotDiv.closest(".card");
    node.hidden = false;
    let note = node.querySelector(".not-shown");
    if (!note) node.append((note = WK.el("p", { class: "help not-shown" })));
    note.textContent = missing.length ? `Not shown (no results in this range): ${missing.map(([, label, why]) => `${label} — ${why}`).join("; ")}.` : "";
    WK.plot(plotDiv, [...shown.map(([n, label]) => line(x, m[n], label)), ...over],
      { showlegend: true, yaxis: { tickformat: ".0%", hoverformat: ".1%", ...yaxis } });
    return true;
  }

  function evaluatorsOff(ctx, any) {
    const existing = document.getElementById("card-evaluators-off");
    if (any) {
      if (existing) existing.hidden = true;
      return;
    }
    const node = section("evaluators-off", "Evaluator results", "wide");
    if (node.dataset.filled) return;
    node.dataset.filled = "true";
    node.setAttribute("role", "note");
    node.append(
      WK.el("p", {}, `No evaluator results for ${ctx.model} in this range. The server evaluates LLM calls that carry a prompt and a response a few seconds after they arrive: groundedness (hallucination, against the retrieved context of the trace or the event's `, WK.el("code", {}, "context"), ` field), PII, refusal and toxicity by default; exact match, token F1 and semantic similarity when an actual answer arrives; an LLM judge when configured; and human feedback.`),
      WK.el("p", {}, "Turn them on (or change what runs) in the ", WK.el("code", {}, "evaluators:"), " section of the settings file (", WK.el("code", {}, "watchkeeper serve --config wk.yaml"), "):"),
      WK.el("pre", { class: "help" }, WK.el("code", {}, [
        "evaluators:",
        "  enabled: [groundedness, pii, refusal, toxicity]",
        "  sample: 1.0          # share of calls evaluated",
        "  max_per_minute: 6000",
        "  judge:               # optional: any OpenAI-compatible endpoint",
        "    url: http://127.0.0.1:8080/v1",
        "    model: gpt-4o-mini",
        "    api_key_env: WATCHKEEPER_JUDGE_KEY",
      ].join("\n"))),
    );
  }

  async function drawEvaluators(ctx, total, x, m) {
    const rates = await evalChart("eval-rates", "Evaluator rates",
      `Share of the evaluated calls of each ${ctx.window} window that an evaluator flagged: hallucination (a claim the context does not support), PII, refusal, toxicity, judge fail, thumbs down.`,
      RATES, total, x, m, { title: { text: "share of evaluated calls" } });
    const scores = await evalChart("eval-scores", "Evaluator scores",
      `Mean score (0–1, higher is better) per ${ctx.window} window: groundedness, the LLM judge's rubrics and human feedback.`,
      SCORES, total, x, m, { title: { text: "mean score" }, range: [0, 1.02] });
    const reference = await evalChart("eval-reference", "Correctness against actual answers",
      `Mean agreement of the responses with the actual (ground-truth) answers sent as labels, per ${ctx.window} window.`,
      REFERENCE, total, x, m, { title: { text: "mean score" }, range: [0, 1.02] });
    evaluatorsOff(ctx, rates || scores || reference);
  }

  // ---- worst calls -------------------------------------------------------------------------
  const snippet = (text, n = 160) => (!text ? WK.fmt.none : text.length > n ? text.slice(0, n - 1) + "…" : text);

  function traceLink(e) {
    if (!e.trace_id) return WK.el("span", { class: "muted" }, "no trace");
    const q = e.event_id ? `?${new URLSearchParams({ span: e.event_id })}` : "";
    return WK.el("a", { href: `/traces/${encodeURIComponent(e.trace_id)}${q}`, class: "trace-link" }, "Open trace");
  }

  async function drawWorst(ctx) {
    const chosen = ctx.params.get("worst") || "";
    const body = WK.bodyCard("worst-calls", "Worst calls",
      "Calls the evaluators flagged, worst first (then the lowest scores); each opens its trace with the call selected.", "worst-calls");
    let picker = document.getElementById("worst-evaluator");
    if (!picker) {
      picker = WK.el("select", { id: "worst-evaluator" },
        WK.el("option", { value: "" }, "All evaluators"), EVALUATORS.map((n) => WK.el("option", { value: n }, n)));
      picker.addEventListener("change", () => {
        WK.setParam("worst", picker.value || null);
        WK.refresh();
      });
      body.before(WK.el("div", { class: "page-filters" }, WK.el("label", { for: "worst-evaluator" }, "Evaluator"), picker));
    }
    picker.value = EVALUATORS.includes(chosen) ? chosen : "";
    const q = { flagged: "true", limit: WORST_LIMIT };
    if (picker.value) q.evaluator = picker.value;
    let got = await WK.get(ctx.api("evaluations", q));
    let flagged = true;
    let rows = got.evaluations || [];
    if (!rows.length) {
      // Nothing flagged: the lowest scores instead (worst first is the API's order).
      delete q.flagged;
      got = await WK.get(ctx.api("evaluations", q));
      rows = got.evaluations || [];
      flagged = false;
    }
    const key = JSON.stringify([rows, flagged]);
    if (body.dataset.key === key) return;
    body.dataset.key = key;
    if (!rows.length) {
      body.replaceChildren(WK.el("p", { class: "muted", id: "no-worst" }, `No evaluator results${picker.value ? ` of ${picker.value}` : ""} in this range.`));
      return;
    }
    const note = flagged ? null : WK.el("p", { class: "help", id: "worst-none-flagged" }, "No call was flagged in this range; these are the lowest scores.");
    body.replaceChildren(...[note, WK.el("div", { class: "table-scroll" }, WK.el("table", { class: "data", id: "worst-table" },
      WK.el("thead", {}, WK.el("tr", {}, ["Time (UTC)", "Evaluator", "Score", "Flagged", "Label", "Prompt", "Response", "Trace"].map((h) => WK.el("th", { scope: "col" }, h)))),
      WK.el("tbody", {}, rows.map((e) => WK.el("tr", { dataset: { eventId: e.event_id, evaluator: e.evaluator } },
        WK.el("td", { class: "when" }, WK.fmt.time(e.event_ts)),
        WK.el("td", {}, WK.el("code", {}, e.evaluator)),
        WK.el("td", { class: "num" }, WK.fmt.number(e.score, 2)),
        WK.el("td", {}, e.flagged ? WK.el("span", { class: "badge sev-warning" }, "▲ flagged") : WK.el("span", { class: "badge ok" }, "✓ no")),
        WK.el("td", {}, e.label || WK.fmt.none),
        WK.el("td", { class: "prompt" }, snippet(e.prompt)),
        WK.el("td", { class: "prompt" }, snippet(e.response)),
        WK.el("td", {}, traceLink(e)))))))].filter(Boolean));
  }
})();
