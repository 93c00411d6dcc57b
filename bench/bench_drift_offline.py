"""Offline drift: ``watchkeeper drift`` against DuckDB, Evidently and NannyML, whole processes.

Writes a prediction log as two Parquet files in a temporary directory (row groups of
100,000 rows, generated with numpy in chunks of that size, so 5 M rows need no large memory):

* 20 numeric features ``num_00`` … ``num_19``: normal (5), lognormal (5), uniform (4) and
  integer counts (6: Poisson, negative binomial);
* 5 categorical string features ``cat_0`` … ``cat_4`` with 3, 5, 10, 20 and 30 categories
  (Zipf-like shares);
* ``score`` (a logistic function of a few features) and ``prediction`` (``score > 0.5``).

The reference has 100,000 rows and the current 1,000,000 (``--rows``). In the current, four
features drift and the other 21 do not: ``num_00`` mean +0.4 σ, ``num_06`` lognormal σ
1.0 → 1.4 (variance), ``num_15`` Poisson λ 3 → 4, and ``cat_2`` shares flattened plus a
category the reference never had (5 %). ``score`` and ``prediction`` move with ``num_00``.

Then it runs, as separate processes, on the same two files:

* ``watchkeeper drift --reference REF --current CUR --json OUT`` (the entry point next to
  this interpreter); skipped with a note while the command does not exist yet;
* the anchors of ``bench/drift_anchors.py`` (``duckdb``, ``evidently``, ``nannyml``; see its
  docstring for what each one computes) in the benchmark-only virtualenv's interpreter
  (``--anchor-python``, default ``/work/bench-venv/bin/python``).

Each process is started by a small launcher (``python -S``, see :data:`LAUNCHER`) and timed
from ``posix_spawn`` to ``os.wait4`` (wall seconds); its peak resident memory is
``ru_maxrss`` from that ``wait4`` (that process and the children it waited for), and CPU
seconds are its user + system time. Before the first timed run each interpreter imports its
libraries once, untimed, so no tool pays for a cold disk cache. With ``--repeat N`` the tools
take turns N times; the figures are medians. Ratios are to the DuckDB anchor of the same run
(time, memory, CPU). The 1-minute load average before and after is in the output: other work
on the machine moves wall times (CPU seconds and peak RSS much less).

Prints one JSON object. Measurements only; nothing is asserted.

    python bench/bench_drift_offline.py [--rows 1000000] [--repeat 1] [--skip evidently,nannyml]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

HERE = Path(__file__).resolve().parent
ANCHORS_PY = HERE / "drift_anchors.py"
ANCHORS = ("duckdb", "evidently", "nannyml")
TOOLS = ("watchkeeper", *ANCHORS)
DEFAULT_ANCHOR_PYTHON = "/work/bench-venv/bin/python"
CHUNK = 100_000  # rows generated at a time = one Parquet row group
SEED = 20240603

Sampler = Callable[[np.random.Generator, int, bool], np.ndarray]


def _normal(mu: float, sigma: float, shift: float = 0.0) -> Sampler:
    return lambda rng, n, cur: rng.normal(mu + (shift * sigma if cur else 0.0), sigma, n)


def _lognormal(mu: float, sigma: float, sigma_cur: float | None = None) -> Sampler:
    return lambda rng, n, cur: rng.lognormal(mu, sigma_cur if cur and sigma_cur else sigma, n)


def _uniform(low: float, high: float) -> Sampler:
    return lambda rng, n, cur: rng.uniform(low, high, n)


def _poisson(lam: float, lam_cur: float | None = None) -> Sampler:
    return lambda rng, n, cur: rng.poisson(lam_cur if cur and lam_cur else lam, n).astype(np.int64)


def _negbin(k: float, p: float) -> Sampler:
    return lambda rng, n, cur: rng.negative_binomial(k, p, n).astype(np.int64)


NUMERIC: dict[str, Sampler] = {
    "num_00": _normal(0.0, 1.0, shift=0.4),  # drifted: mean +0.4 σ
    "num_01": _normal(50.0, 10.0),
    "num_02": _normal(-3.0, 0.5),
    "num_03": _normal(1000.0, 250.0),
    "num_04": _normal(0.0, 5.0),
    "num_05": _lognormal(3.0, 0.6),
    "num_06": _lognormal(0.0, 1.0, sigma_cur=1.4),  # drifted: variance
    "num_07": _lognormal(5.0, 0.3),
    "num_08": _lognormal(1.0, 0.8),
    "num_09": _lognormal(2.0, 0.4),
    "num_10": _uniform(0.0, 1.0),
    "num_11": _uniform(-10.0, 10.0),
    "num_12": _uniform(100.0, 200.0),
    "num_13": _uniform(0.0, 1e6),
    "num_14": _poisson(1.0),
    "num_15": _poisson(3.0, lam_cur=4.0),  # drifted: count rate
    "num_16": _poisson(12.0),
    "num_17": _negbin(2.0, 0.3),
    "num_18": _negbin(5.0, 0.5),
    "num_19": _poisson(0.2),
}
CATEGORIES = {"cat_0": 3, "cat_1": 5, "cat_2": 10, "cat_3": 20, "cat_4": 30}
CAT_DRIFTED = "cat_2"  # shares flattened, plus NEW_SHARE of a category unseen in the reference
NEW_SHARE = 0.05
DRIFTED = ["num_00", "num_06", "num_15", CAT_DRIFTED]


def _labels(name: str, k: int) -> np.ndarray:
    return np.array([f"{name}_v{i:02d}" for i in range(k)] + [f"{name}_new"], dtype=object)


def _shares(k: int, power: float) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** power
    return p / p.sum()


def _chunk(rng: np.random.Generator, n: int, current: bool) -> pa.Table:
    cols: dict[str, Any] = {name: sample(rng, n, current) for name, sample in NUMERIC.items()}
    for name, k in CATEGORIES.items():
        if current and name == CAT_DRIFTED:
            p = np.append(_shares(k, 0.5) * (1 - NEW_SHARE), NEW_SHARE)
        else:
            p = np.append(_shares(k, 1.0), 0.0)
        cols[name] = _labels(name, k)[rng.choice(k + 1, size=n, p=p)]
    logit = (
        0.8 * cols["num_00"]
        - 0.1 * cols["num_04"]
        + 0.5 * (cols["num_10"] - 0.5)
        + 0.3 * np.log(cols["num_06"])
        + 0.2 * (cols["cat_0"] == "cat_0_v00")
        + rng.normal(0.0, 0.5, n)
    )
    cols["score"] = 1.0 / (1.0 + np.exp(-logit))
    cols["prediction"] = (cols["score"] > 0.5).astype(np.int64)
    return pa.table({name: pa.array(values) for name, values in cols.items()})


def write_log(path: Path, rows: int, current: bool, seed: int) -> dict[str, Any]:
    """``rows`` rows in chunks of CHUNK (one row group each); the same seed gives the same file."""
    t0 = time.perf_counter()
    seeds = np.random.SeedSequence(seed).spawn((rows + CHUNK - 1) // CHUNK)
    writer: pq.ParquetWriter | None = None
    try:
        for i, ss in enumerate(seeds):
            n = min(CHUNK, rows - i * CHUNK)
            table = _chunk(np.random.default_rng(ss), n, current)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK)
    finally:
        if writer is not None:
            writer.close()
    return {
        "rows": rows,
        "mib": round(path.stat().st_size / 2**20, 1),
        "write_s": round(time.perf_counter() - t0, 1),
    }


# --- processes --------------------------------------------------------------------------------


# Runs one tool and writes its figures to a file (argv: result file, timeout, command...).
# Started with ``python -S`` so it is small: ``ru_maxrss`` of a process counts the memory of
# the process it was forked from until it exec'd (Linux keeps the old address space's
# high-water mark at exec), so a tool spawned straight from this script, which holds numpy,
# pyarrow and the generated rows, would never report less than this script's own peak. From
# this launcher the floor is its ~10 MiB.
LAUNCHER = """
import json, os, signal, sys, time
result, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
killed = []
t0 = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ)
def kill(*_):
    killed.append(True)
    os.kill(pid, signal.SIGKILL)
signal.signal(signal.SIGALRM, kill)
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - t0
signal.setitimer(signal.ITIMER_REAL, 0)
with open(result, "w") as f:
    json.dump({"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024,
               "cpu_s": usage.ru_utime + usage.ru_stime,
               "rc": os.waitstatus_to_exitcode(status), "timed_out": bool(killed)}, f)
"""


def measure(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run ``cmd`` to the end under :data:`LAUNCHER`: wall seconds from spawn to ``wait4``,
    peak RSS (``ru_maxrss`` from that ``wait4``: the process and the children it waited for),
    CPU seconds, exit code, and its stdout/stderr (in files, not pipes, so nothing blocks)."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".json") as res,
    ):
        launch = [sys.executable, "-S", "-c", LAUNCHER, res.name, str(timeout), *cmd]
        t0 = time.perf_counter()
        launcher = subprocess.run(
            launch, stdout=out, stderr=err, stdin=subprocess.DEVNULL, check=False
        )
        text = Path(res.name).read_text()
        figures = (
            json.loads(text)
            if text
            else {  # the launcher failed (e.g. no such file)
                "seconds": time.perf_counter() - t0,
                "peak_rss_mib": 0.0,
                "cpu_s": 0.0,
                "rc": launcher.returncode,
                "timed_out": False,
            }
        )
        out.seek(0)
        err.seek(0)
        figures["stdout"] = out.read().decode(errors="replace")
        figures["stderr"] = err.read().decode(errors="replace")
        return figures


def watchkeeper_cmd() -> list[str]:
    """The ``watchkeeper`` console script of this interpreter (no pyenv shim in between)."""
    script = Path(sys.executable).parent / "watchkeeper"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from watchkeeper.cli.main import main; main()"]


def last_json_line(text: str) -> Any:
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def summarize_output(path: Path) -> dict[str, Any] | None:
    """What ``watchkeeper drift --json`` wrote: its ``summary`` and the drifted features."""
    if not path.exists():
        return None
    info: dict[str, Any] = {"bytes": path.stat().st_size}
    try:
        doc = json.loads(path.read_text())
    except ValueError:
        info["json"] = False
        return info
    if not isinstance(doc, dict):
        return info
    info["summary"] = doc.get("summary")
    features = doc.get("features")
    if isinstance(features, list):
        info["drifted"] = sorted(
            str(f.get("feature")) for f in features if isinstance(f, dict) and f.get("drifted")
        )
        info["n_drifted"] = len(info["drifted"])
    return info


def run_tool(
    tool: str,
    ref: Path,
    cur: Path,
    work: Path,
    anchor_python: str,
    timeout: float,
    watchkeeper_args: list[str],
) -> dict[str, Any]:
    """One timed run; ``note`` set (and no figures) when the tool cannot run at all."""
    ok_codes = {0}
    if tool == "watchkeeper":
        ok_codes = {0, 1}  # 1: something drifted (the command gates pipelines); 2: bad input
        out_json = work / "watchkeeper-drift.json"
        out_json.unlink(missing_ok=True)
        cmd = [*watchkeeper_cmd(), "drift", "--reference", str(ref), "--current", str(cur)]
        m = measure([*cmd, "--json", str(out_json), *watchkeeper_args], timeout)
        if m["rc"] != 0 and "No such command" in m["stderr"]:
            return {"note": "skipped: `watchkeeper drift` does not exist yet (No such command)"}
        summary = summarize_output(out_json)
    else:
        m = measure([anchor_python, str(ANCHORS_PY), tool, str(ref), str(cur)], timeout)
        summary = last_json_line(m["stdout"])
    run = {k: m[k] for k in ("seconds", "peak_rss_mib", "cpu_s", "rc")}
    run["ok"] = m["rc"] in ok_codes and not m["timed_out"]
    if m["timed_out"]:
        run["error"] = f"killed after the {timeout:g} s timeout"
    elif not run["ok"]:
        run["error"] = (m["stderr"].strip() or m["stdout"].strip())[-1500:]
    run["summary"] = summary
    return run


def warm_up(tools: list[str], anchor_python: str) -> None:
    """Import each interpreter's libraries once, untimed (disk cache, compiled bytecode)."""
    imports = {
        "duckdb": "import duckdb, pyarrow.parquet, numpy, scipy.stats",
        "evidently": "import evidently.presets, pandas",
        "nannyml": "import nannyml, pandas",
    }
    code = "; ".join(imports[t] for t in tools if t in imports)
    if code:
        subprocess.run([anchor_python, "-c", code], check=False, capture_output=True)
    if "watchkeeper" in tools:
        subprocess.run([*watchkeeper_cmd(), "--help"], check=False, capture_output=True)


def anchor_versions(anchor_python: str) -> dict[str, Any] | None:
    proc = subprocess.run(
        [anchor_python, str(ANCHORS_PY), "versions"], capture_output=True, text=True, check=False
    )
    return last_json_line(proc.stdout) if proc.returncode == 0 else None


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs that succeeded; every run's figures (a failed or killed one's are
    up to its end) in ``runs_s`` / ``runs_peak_rss_mib``."""
    ok = [r for r in runs if r["ok"]]
    every = {
        "runs_s": [round(r["seconds"], 3) for r in runs],
        "runs_peak_rss_mib": [round(r["peak_rss_mib"], 1) for r in runs],
    }
    if not ok:
        return {"ok": False, "error": runs[-1].get("error"), **every}
    return {
        "ok": True,
        "seconds": round(statistics.median(r["seconds"] for r in ok), 3),
        "peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in ok), 1),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in ok), 2),
        **every,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current rows")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (median)")
    parser.add_argument("--skip", default="", help="comma-separated: " + ",".join(TOOLS))
    parser.add_argument("--anchor-python", default=DEFAULT_ANCHOR_PYTHON)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    parser.add_argument(
        "--watchkeeper-args",
        default="",
        help="extra arguments for `watchkeeper drift`, e.g. '--no-multivariate' (one string)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="write (or reuse) the Parquet files here and keep them"
    )
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(TOOLS):
        parser.error(f"--skip: unknown {sorted(skip - set(TOOLS))}; known: {', '.join(TOOLS)}")
    tools = [t for t in TOOLS if t not in skip]
    wk_args = shlex.split(args.watchkeeper_args)
    if any(t in ANCHORS for t in tools) and not Path(args.anchor_python).exists():
        parser.error(f"--anchor-python {args.anchor_python} not found (see bench/README.md)")

    result: dict[str, Any] = {
        "benchmark": "drift_offline",
        "rows_reference": args.reference_rows,
        "rows_current": args.rows,
        "features": {"numeric": len(NUMERIC), "categorical": len(CATEGORIES)},
        "drifted_by_construction": DRIFTED,
        "repeat": args.repeat,
        "machine": machine(),
        "watchkeeper_command": " ".join(
            ["watchkeeper drift --reference REF --current CUR --json OUT", *wk_args]
        ),
        "anchor_python": args.anchor_python,
        "anchor_versions": (
            anchor_versions(args.anchor_python) if any(t in ANCHORS for t in tools) else None
        ),
    }
    with tempfile.TemporaryDirectory(prefix="wk-bench-drift-") as tmp:
        data = args.data_dir or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        ref = data / f"reference-{args.reference_rows}.parquet"
        cur = data / f"current-{args.rows}.parquet"
        result["data"] = {}
        for key, path, rows, current, seed in (
            ("reference", ref, args.reference_rows, False, SEED),
            ("current", cur, args.rows, True, SEED + 1),
        ):
            if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
                result["data"][key] = {"rows": rows, "mib": round(path.stat().st_size / 2**20, 1)}
            else:
                result["data"][key] = write_log(path, rows, current, seed)

        warm_up(tools, args.anchor_python)
        result["loadavg_1m"] = {"before": round(os.getloadavg()[0], 2)}
        runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
        notes: dict[str, str] = {}
        for _ in range(args.repeat):
            for tool in tools:
                if tool in notes:
                    continue
                run = run_tool(tool, ref, cur, Path(tmp), args.anchor_python, args.timeout, wk_args)
                if "note" in run:
                    notes[tool] = run["note"]
                else:
                    runs[tool].append(run)

    result["loadavg_1m"]["after"] = round(os.getloadavg()[0], 2)  # other work on the machine
    tools_out: dict[str, Any] = {}
    for tool in tools:
        if tool in notes:
            tools_out[tool] = {"ok": False, "note": notes[tool]}
            continue
        tools_out[tool] = {**median_figures(runs[tool]), "summary": runs[tool][-1]["summary"]}
    base = tools_out.get("duckdb", {})
    for figures in tools_out.values():
        if figures.get("ok") and base.get("ok"):
            figures["ratio_to_duckdb"] = {
                "seconds": round(figures["seconds"] / base["seconds"], 2),
                "peak_rss": round(figures["peak_rss_mib"] / base["peak_rss_mib"], 2),
                "cpu_s": round(figures["cpu_s"] / base["cpu_s"], 2),
            }
    result["tools"] = tools_out
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
