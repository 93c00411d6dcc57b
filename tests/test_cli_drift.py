"""`watchkeeper drift`: offline comparison of two files, exit codes, JSON and HTML output.

Oracles: the exact offline KS statistic equals scipy's ``ks_2samp`` and the Wasserstein
distance equals scipy's ``wasserstein_distance`` within the bound the command reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

RNG = np.random.default_rng(42)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchkeeper.cli.main", "drift", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _data(n: int, shift: float, new_category: bool, rng: np.random.Generator) -> pa.Table:
    cats = ["de", "fr", "us"] + (["xx"] if new_category else [])
    p = [0.3, 0.3, 0.3, 0.1] if new_category else [1 / 3] * 3
    return pa.table(
        {
            "amount": rng.lognormal(3 + shift, 0.5, n),
            "age": rng.integers(18, 80, n).astype(np.int64),
            "score": rng.random(n),
            "country": rng.choice(cats, n, p=p),
            "flag": rng.random(n) < 0.2,
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("drift")
    ref = _data(20_000, 0.0, False, RNG)
    same = _data(50_000, 0.0, False, RNG)
    drifted = _data(50_000, 0.3, True, RNG)
    out = {}
    for name, table in (("ref", ref), ("same", same), ("drifted", drifted)):
        out[name] = d / f"{name}.parquet"
        pq.write_table(table, out[name], row_group_size=7_000)
    out["drifted_csv"] = d / "drifted.csv"
    pa_csv.write_csv(drifted, out["drifted_csv"])
    return out


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_no_drift_exits_0(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = _run("--reference", str(files["ref"]), "--current", str(files["same"]), "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    result = _json(out)
    assert result["summary"]["drifted"] == 0
    assert {f["feature"] for f in result["features"]} == {
        "amount",
        "age",
        "score",
        "country",
        "flag",
    }
    assert "0 of 5 feature(s) drifted" in r.stdout
    assert not any(m["drifted"] for m in result["multivariate"])


def test_drift_exits_1_and_names_the_features(files: dict[str, Path], tmp_path: Path) -> None:
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    r = _run(
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["drifted"]),
        "--json",
        str(out),
        "--html",
        str(html),
    )
    assert r.returncode == 1, r.stdout + r.stderr
    result = _json(out)
    verdict = {f["feature"]: f["severity"] for f in result["features"]}
    assert verdict["amount"] == "drift"
    assert verdict["country"] == "drift"
    assert verdict["age"] == verdict["score"] == verdict["flag"] == "ok"
    # worst first
    assert [f["feature"] for f in result["features"][:2]] in (
        ["amount", "country"],
        ["country", "amount"],
    )
    country = next(f for f in result["features"] if f["feature"] == "country")
    assert country["extra"]["unseen_share"] == pytest.approx(0.1, abs=0.01)  # 10 % "xx"
    assert html.read_text().count("<svg") >= 5
    assert "DRIFT" in r.stdout


def test_csv_reads_like_parquet(files: dict[str, Path], tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    common = ["--reference", str(files["ref"]), "--no-multivariate", "-q"]
    assert _run(*common, "--current", str(files["drifted"]), "--json", str(a)).returncode == 1
    assert _run(*common, "--current", str(files["drifted_csv"]), "--json", str(b)).returncode == 1

    def stats(p: Path) -> dict[str, float]:
        return {f["feature"]: f["statistic"] for f in _json(p)["features"]}

    # CSV round-trips floats through text (17 significant digits): same statistics
    assert stats(a) == pytest.approx(stats(b), rel=1e-9)


def test_exact_offline_statistics_equal_scipy(files: dict[str, Path], tmp_path: Path) -> None:
    ref = pq.read_table(files["ref"])
    cur = pq.read_table(files["drifted"])
    for method in ("ks", "wasserstein"):
        out = tmp_path / f"{method}.json"
        r = _run(
            "--reference",
            str(files["ref"]),
            "--current",
            str(files["drifted"]),
            "--columns",
            "amount,age",
            "--method",
            method,
            "--no-multivariate",
            "--json",
            str(out),
        )
        assert r.returncode in (0, 1), r.stderr
        for f in _json(out)["features"]:
            a = ref.column(f["feature"]).to_numpy().astype(float)
            b = cur.column(f["feature"]).to_numpy().astype(float)
            if method == "ks":
                want = sps.ks_2samp(a, b, method="asymp")
                # every reference value is an edge: exact, up to float summation order
                assert f["statistic"] == pytest.approx(want.statistic, abs=1e-12)
                assert f["p_value"] == pytest.approx(want.pvalue, rel=1e-6, abs=1e-300)
                assert f["extra"]["bound"] == 0.0
            else:
                want_w = sps.wasserstein_distance(a, b) / np.std(a, ddof=1)
                # within the bound the command reports (CDF crossings between two adjacent
                # reference values), plus float rounding
                assert abs(f["statistic"] - want_w) <= f["extra"]["bound"] + 1e-9
                assert f["extra"]["bound"] < 0.01 * want_w


def test_per_feature_method_and_columns(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    r = _run(
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["drifted"]),
        "--columns",
        "amount,country",
        "--method",
        "jensen_shannon",
        "--method",
        "amount=ks",
        "--no-multivariate",
        "--json",
        str(out),
    )
    assert r.returncode == 1
    methods = {f["feature"]: f["method"] for f in _json(out)["features"]}
    assert methods == {"amount": "ks", "country": "jensen_shannon"}


def test_config_file_sets_thresholds(files: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "wk.yaml"
    cfg.write_text("drift:\n  features:\n    amount: {method: psi, warn: 50, drift: 100}\n")
    out = tmp_path / "r.json"
    r = _run(
        "--reference",
        str(files["ref"]),
        "--current",
        str(files["drifted"]),
        "--columns",
        "amount",
        "--config",
        str(cfg),
        "--no-multivariate",
        "--json",
        str(out),
    )
    assert r.returncode == 0, r.stdout + r.stderr  # thresholds nothing can reach
    (f,) = _json(out)["features"]
    assert (f["warn_threshold"], f["threshold"]) == (50, 100)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--current", "{missing}"], "no such file"),
        (["--current", "{ref}", "--columns", "nope"], "not in both files"),
        (["--current", "{ref}", "--method", "median"], "unknown method"),
        (["--current", "{ref}", "--method", "country=ks"], "does not apply"),
        (["--current", "{txt}"], "use a .parquet or .csv file"),
    ],
)
def test_bad_input_exits_2(
    files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    txt = tmp_path / "data.json"
    txt.write_text("{}")
    subst = {
        "missing": str(tmp_path / "missing.parquet"),
        "ref": str(files["ref"]),
        "txt": str(txt),
    }
    args = [a.format(**subst) for a in args]
    r = _run("--reference", str(files["ref"]), "--no-multivariate", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_type_mismatch_exits_2(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "typed.parquet"
    pq.write_table(pa.table({"amount": pa.array(["a", "b"])}), other)
    r = _run("--reference", str(files["ref"]), "--current", str(other), "--no-multivariate")
    assert r.returncode == 2
    assert "amount" in r.stderr and "VARCHAR" in r.stderr


def test_streams_current_larger_than_one_slice(tmp_path: Path) -> None:
    """More rows than one counting slice: the merged counts equal one pass over all rows."""
    rng = np.random.default_rng(3)
    ref = pa.table({"x": rng.normal(size=5000)})
    cur = pa.table({"x": rng.normal(0.05, 1, 1_200_000)})
    pq.write_table(ref, tmp_path / "ref.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet", row_group_size=100_000)
    out = tmp_path / "r.json"
    r = _run(
        "--reference",
        str(tmp_path / "ref.parquet"),
        "--current",
        str(tmp_path / "cur.parquet"),
        "--method",
        "ks",
        "--no-multivariate",
        "--json",
        str(out),
    )
    assert r.returncode in (0, 1), r.stderr
    (f,) = _json(out)["features"]
    assert f["n_current"] == 1_200_000
    want = sps.ks_2samp(ref.column("x").to_numpy(), cur.column("x").to_numpy(), method="asymp")
    assert f["statistic"] == pytest.approx(want.statistic, abs=1e-12)
