// Operations tab: range totals (count, error rate, latency p95), then throughput, error rate
// and latency percentiles over the chosen range, each with the thresholds or learned bands
// of the monitors that watch it (wk-monitors.js).
"use strict";

(() => {
  const NAMES = ["count", "throughput", "error_count", "error_rate", "latency_p50", "latency_p95", "latency_p99"];
  const TOTALS = ["count", "throughput", "error_count", "error_rate", "latency_p50", "latency_p95", "latency_p99"];
  const line = (x, y, name, style = {}) => ({ x, y, name, type: "scatter", mode: "lines", connectgaps: false, line: { width: 2, ...style } });

  const tiles = WK.tiles;
  const noDataNote = (layout, empty, text) => WK.noData(layout, empty ? text : null);

  WK.onRefresh(async (ctx) => {
    const [data, all] = await Promise.all([
      WK.get(ctx.api("metrics", { names: NAMES.join(","), window: ctx.window })),
      WK.get(ctx.api("metrics", { names: TOTALS.join(","), window: "all" })),
    ]);
    const total = Object.fromEntries(TOTALS.map((n) => [n, all.metrics[n][0]]));
    tiles("totals", "Over the whole range", [
      ["count", "Events", WK.fmt.int(total.count), total.count, `${WK.fmt.number(total.throughput, 2)} events/s on average`],
      ["error_rate", "Error rate", WK.fmt.pct(total.error_rate, 2), total.error_rate, `${WK.fmt.int(total.error_count)} failed calls`],
      ["latency_p50", "Latency p50", WK.fmt.ms(total.latency_p50), total.latency_p50, "median call"],
      ["latency_p95", "Latency p95", WK.fmt.ms(total.latency_p95), total.latency_p95, "95 % of calls were faster"],
      ["latency_p99", "Latency p99", WK.fmt.ms(total.latency_p99), total.latency_p99, "99 % of calls were faster"],
    ]);

    const x = data.windows;
    const m = data.metrics;
    const empty = !m.count.some((c) => c > 0);
    const note = "No events in this range";
    const [thrOver, errOver, latOver] = await Promise.all([
      WK.monitorOverlays("throughput", { label: "throughput", format: (v) => `${WK.fmt.number(v, 2)} events/s` }),
      WK.monitorOverlays("error_rate", { label: "error rate", format: (v) => WK.fmt.pct(v, 2) }),
      Promise.all([
        WK.monitorOverlays("latency_p50", { label: "p50", format: WK.fmt.ms }),
        WK.monitorOverlays("latency_p95", { label: "p95", format: WK.fmt.ms }),
        WK.monitorOverlays("latency_p99", { label: "p99", format: WK.fmt.ms }),
      ]).then((lists) => lists.flat()),
    ]);

    // The window still open at the range's end has only part of its events: leaving it out
    // keeps throughput from seeming to drop to zero at "now".
    const closed = x.filter((w) => Date.parse(w) + WK.WINDOW_MS[ctx.window] <= ctx.end.getTime()).length;
    WK.plot(WK.chartCard("throughput", "Throughput", `Events per second, averaged over each ${ctx.window} window (the window still open is left out).`), [
      line(x.slice(0, closed), m.throughput.slice(0, closed), "events/s"),
      ...thrOver,
    ], noDataNote({ yaxis: { title: { text: "events/s" } } }, empty, note));
    WK.plot(WK.chartCard("error_rate", "Error rate", `Share of calls with status error, per ${ctx.window} window.`), [
      { ...line(x, m.error_rate, "error rate", { color: WK.COLORS[4] }), customdata: m.error_count, hovertemplate: "%{y:.2%} (%{customdata} failed)" },
      ...errOver,
    ], noDataNote({ yaxis: { title: { text: "error rate" }, tickformat: ".2~%", hoverformat: ".2%" } }, empty, note));
    const latency = WK.chartCard("latency", "Latency", `p50, p95 and p99 of latency_ms per ${ctx.window} window.`);
    latency.closest(".card").classList.add("wide");
    WK.plot(latency, [
      line(x, m.latency_p50, "p50", { dash: "dot" }),
      line(x, m.latency_p95, "p95"),
      line(x, m.latency_p99, "p99", { dash: "dash" }),
      ...latOver,
    ], noDataNote({ yaxis: { title: { text: "latency (ms)" }, hoverformat: ".1f" } }, empty, note));
  });
})();
