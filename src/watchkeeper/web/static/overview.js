// Overview page: one row per model with its metrics over the last hour, refreshed in place.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const METRICS = ["count", "throughput", "latency_p95", "error_rate", "accuracy", "mae", "label_coverage"];
  const TASKS = { classification: "Classification", regression: "Regression", llm: "LLM" };
  const COLUMNS = ["task", "throughput", "latency_p95", "error_rate", "quality", "label_coverage", "last_seen"];
  let timer = null;
  let lastSuccess = null;
  let running = false;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    } catch (err) {
      throw new ApiError(0, "the server did not answer (is it still running?)");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        if (body && typeof body.detail === "string") detail = body.detail;
      } catch (err) { /* not JSON: keep the status text */ }
      throw new ApiError(response.status, `HTTP ${response.status}${detail ? ": " + detail : ""}`);
    }
    return response.json();
  }

  // Formatting: the page and its tests share these rules (fixed decimals, "—" for no data).
  const fixed = (digits, scale = 1) => (v) => (v * scale).toFixed(digits);
  const FORMAT = {
    throughput: fixed(2),
    latency_p95: fixed(1),
    error_rate: fixed(2, 100),
    accuracy: fixed(1, 100),
    mae: fixed(2),
    label_coverage: fixed(0, 100),
  };

  function relativeTime(iso, now) {
    const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleString();
  }

  function setCell(cell, text, value, label) {
    // Touch the DOM only when something changed, so refreshes never flicker.
    const key = JSON.stringify([text, value, label]);
    if (cell.dataset.key === key) return;
    cell.dataset.key = key;
    cell.dataset.value = value === null || value === undefined ? "" : String(value);
    cell.replaceChildren();
    const shown = document.createElement("span");
    shown.className = "value";
    if (text === null) {
      shown.classList.add("none");
      shown.textContent = "—";
      const hidden = document.createElement("span");
      hidden.className = "visually-hidden";
      hidden.textContent = " no data";
      cell.append(shown, hidden);
    } else {
      shown.textContent = text;
      cell.append(shown);
    }
    if (label) {
      const name = document.createElement("span");
      name.className = "metric-name";
      name.textContent = label;
      cell.append(name);
    }
  }

  function metricCell(cell, name, value, label) {
    setCell(cell, value === null || value === undefined ? null : FORMAT[name](value), value, label);
  }

  function makeRow(model) {
    const row = document.createElement("tr");
    row.dataset.model = model.name;
    const head = document.createElement("th");
    head.scope = "row";
    head.dataset.col = "name";
    const name = document.createElement("span");
    name.className = "model-name";
    name.textContent = model.name;
    const versions = document.createElement("span");
    versions.className = "versions";
    head.append(name, versions);
    row.append(head);
    for (const col of COLUMNS) {
      const cell = document.createElement("td");
      cell.dataset.col = col;
      if (col !== "task" && col !== "last_seen") cell.className = "num";
      if (col === "last_seen") cell.className = "when";
      row.append(cell);
    }
    return row;
  }

  function updateRow(row, model, metrics, now) {
    const value = (name) => (metrics[name] && metrics[name].length ? metrics[name][0] : null);
    const cell = (col) => row.querySelector(`[data-col="${col}"]`);
    const names = (model.versions || []).map((v) => (typeof v === "string" ? v : v.version));
    const versions = names.length ? `${names.length > 1 ? "versions" : "version"}: ${names.join(", ")}` : "";
    const versionsEl = row.querySelector(".versions");
    if (versionsEl.textContent !== versions) versionsEl.textContent = versions;
    setCell(cell("task"), model.task ? TASKS[model.task] || model.task : null, model.task);
    for (const name of ["throughput", "latency_p95", "error_rate", "label_coverage"]) {
      metricCell(cell(name), name, value(name));
    }
    let quality = model.task === "regression" ? "mae" : "accuracy";
    if (!model.task && value("accuracy") === null && value("mae") !== null) quality = "mae";
    const known = model.task === "classification" || model.task === "regression";
    const label = !known && value(quality) === null ? null : quality === "mae" ? "MAE" : "accuracy, %";
    metricCell(cell("quality"), quality, value(quality), label);
    cell("quality").dataset.metric = quality;
    const seen = cell("last_seen");
    if (model.last_seen) {
      const text = relativeTime(model.last_seen, now);
      setCell(seen, text, model.last_seen);
      seen.title = new Date(model.last_seen).toLocaleString();
    } else {
      setCell(seen, null, null);
    }
  }

  function render(models, results, now) {
    const body = document.getElementById("model-rows");
    const existing = new Map([...body.rows].map((row) => [row.dataset.model, row]));
    models.forEach((model, i) => {
      let row = existing.get(model.name);
      if (!row) row = makeRow(model);
      existing.delete(model.name);
      if (body.rows[i] !== row) body.insertBefore(row, body.rows[i] || null);
      updateRow(row, model, results[i].metrics || {}, now);
    });
    for (const row of existing.values()) row.remove();
    document.getElementById("empty").hidden = models.length > 0;
    document.querySelector(".table-wrap").hidden = models.length === 0;
  }

  function showError(err) {
    const box = document.getElementById("error");
    box.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = "Could not load metrics: ";
    box.append(strong, document.createTextNode(err.message + ". "));
    if (err.status === 401 || err.status === 403) {
      const link = document.createElement("a");
      link.href = "/login";
      link.textContent = "Sign in again";
      box.append(link, document.createTextNode("."));
    } else {
      const when = lastSuccess ? `Showing data from ${lastSuccess.toLocaleTimeString()}; r` : "R";
      box.append(document.createTextNode(`${when}etrying every ${REFRESH_MS / 1000} s.`));
    }
    box.hidden = false;
    document.getElementById("status").textContent = "Update failed.";
  }

  async function refresh() {
    if (running) return;
    clearTimeout(timer);
    if (document.hidden) return; // resumes on visibilitychange
    running = true;
    const end = new Date();
    const start = new Date(end.getTime() - 3600 * 1000);
    const query = new URLSearchParams({
      names: METRICS.join(","),
      window: "all",
      start: start.toISOString(),
      end: end.toISOString(),
    });
    try {
      const { models } = await getJSON("/api/v1/models");
      const results = await Promise.all(
        models.map((m) => getJSON(`/api/v1/models/${encodeURIComponent(m.name)}/metrics?${query}`)),
      );
      render(models, results, end.getTime());
      lastSuccess = end;
      document.getElementById("error").hidden = true;
      document.getElementById("status").textContent = `Updated ${end.toLocaleTimeString()}.`;
      document.body.dataset.loaded = "true";
    } catch (err) {
      showError(err);
    } finally {
      running = false;
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  document.addEventListener("DOMContentLoaded", refresh);
})();
