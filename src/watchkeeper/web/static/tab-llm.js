// LLM tab: tokens in and out, cost and time to first token over the chosen range, range
// totals as tiles, and monitor thresholds/bands on the charts (wk-monitors.js). A model
// without LLM fields gets a short card saying what to send instead of empty charts.
"use strict";

(() => {
  const NAMES = ["count", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "ttft_p50", "ttft_p95", "ttft_p99"];
  const TOTALS = [...NAMES, "ttft_mean"];
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
      ["ttft_p95", "Time to first token p95", WK.fmt.ms(total.ttft_p95, 0), total.ttft_p95, `median ${WK.fmt.ms(total.ttft_p50, 0)}`],
    ]);

    const data = await WK.get(ctx.api("metrics", { names: NAMES.join(","), window: ctx.window }));
    const x = data.windows;
    const m = data.metrics;
    const [tokOver, costOver, ttftOver] = await Promise.all([
      Promise.all([
        WK.monitorOverlays("input_tokens", { label: "tokens in", format: WK.fmt.int }),
        WK.monitorOverlays("output_tokens", { label: "tokens out", format: WK.fmt.int }),
        WK.monitorOverlays("total_tokens", { label: "total tokens", format: WK.fmt.int }),
      ]).then((l) => l.flat()),
      WK.monitorOverlays("cost_usd", { label: "cost", format: usd }),
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
  });
})();
