"""Quality and throughput of the label-free evaluators (``watchkeeper.evaluators``).

Quality on the labelled sets written for the tests (``tests/data/evaluators/``):

* groundedness: hallucination detection (positive = the response is not grounded) on
  ``groundedness.jsonl``, at the default threshold and a few others;
* PII: span-level precision, recall and F1 per kind and overall on ``pii.jsonl`` (a finding
  counts when kind, start and end are exact).

Throughput: calls per second of each evaluator, single thread, on generated 1-2 KB texts
(support-chat answers with a little PII, a refusal now and then, and a 2 KB context for
groundedness).

Prints one JSON object; ``--markdown`` prints the tables for BENCHMARKS.md on stderr.

    python bench/bench_evaluators.py [--markdown] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from watchkeeper.evaluators import (
    detect_refusal,
    find_pii,
    groundedness,
    redact,
    score_toxicity,
    token_f1,
)
from watchkeeper.evaluators.pii import KINDS

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "evaluators"


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line]


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(f1, 3)}  # fmt: skip


def groundedness_quality() -> dict[str, Any]:
    rows = _rows("groundedness.jsonl")
    out: dict[str, Any] = {
        "examples": len(rows),
        "hallucinated": sum(not r["grounded"] for r in rows),
    }
    for threshold in (0.5, 0.6, 0.75, 0.8):
        tp = fp = fn = 0
        for row in rows:
            flagged = groundedness(
                row["response"], row["context"], threshold=threshold
            ).hallucination
            tp += flagged and not row["grounded"]
            fp += flagged and row["grounded"]
            fn += (not flagged) and not row["grounded"]
        out[f"threshold_{threshold}"] = _prf(tp, fp, fn)
    return out


def pii_quality() -> dict[str, Any]:
    rows = _rows("pii.jsonl")
    counts = {k: [0, 0, 0] for k in KINDS}
    for row in rows:
        text = row["text"]
        want = set()
        for span in row["pii"]:
            start = text.index(span["text"])
            want.add((span["kind"], start, start + len(span["text"])))
        got = {(f.kind, f.start, f.end) for f in find_pii(text)}
        for kind, *_ in got & want:
            counts[kind][0] += 1
        for kind, *_ in got - want:
            counts[kind][1] += 1
        for kind, *_ in want - got:
            counts[kind][2] += 1
    per_kind = {k: _prf(*v) for k, v in counts.items()}
    total = [sum(v[i] for v in counts.values()) for i in range(3)]
    return {"texts": len(rows), "negatives": sum(not r["pii"] for r in rows),
            "overall": _prf(*total), "per_kind": per_kind}  # fmt: skip


_SENTENCES = [
    "Thanks for reaching out about your order.",
    "Your parcel left our warehouse on Monday and should arrive within three business days.",
    "Refunds are paid to the original payment method within five business days.",
    "If the item is unused and in its original packaging you can return it within 30 days.",
    "Our support team is available from 9 am to 6 pm, Monday to Friday.",
    "The premium plan includes priority shipping and an extended warranty of two years.",
    "You can update your delivery address from the account page at any time.",
    "Sale items cannot be refunded, but they can be exchanged for a different size.",
]
_PII = ["jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32", "192.168.10.24", "(415) 555-2671"]  # fmt: skip
_EXTRA = ["I'm sorry, but I can't help with that.", "Let me connect you with an agent.",
          "This stupid form keeps failing."]  # fmt: skip


def _texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts: list[str] = []
        target = rng.randint(1024, 2048)
        while sum(len(p) + 1 for p in parts) < target:
            roll = rng.random()
            if roll < 0.08:
                parts.append(f"Contact: {rng.choice(_PII)}.")
            elif roll < 0.11:
                parts.append(rng.choice(_EXTRA))
            else:
                parts.append(rng.choice(_SENTENCES))
        out.append(" ".join(parts)[:target])
    return out


def _throughput(fn: Callable[[str], object], texts: list[str], seconds: float) -> dict[str, float]:
    calls = 0
    start = time.perf_counter()
    while True:
        for text in texts:
            fn(text)
        calls += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return {"calls_per_s": round(calls / elapsed, 1), "calls": calls,
            "mean_bytes": round(sum(len(t) for t in texts) / len(texts))}  # fmt: skip


def throughput(seconds: float) -> dict[str, Any]:
    texts = _texts(200)
    context = " ".join(_SENTENCES * 4)[:2048]
    evaluators: dict[str, Callable[[str], object]] = {
        "pii.find_pii": find_pii,
        "pii.redact": redact,
        "refusal.detect_refusal": detect_refusal,
        "toxicity.score_toxicity": score_toxicity,
        "reference.token_f1": lambda t: token_f1(t, context),
        "grounded.groundedness (2 KB context)": lambda t: groundedness(t, context),
    }
    return {name: _throughput(fn, texts, seconds) for name, fn in evaluators.items()}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| groundedness (hallucination = positive) | precision | recall | F1 | tp / fp / fn |",
             "|---|---|---|---|---|"]  # fmt: skip
    g = result["groundedness"]
    for key, v in g.items():
        if key.startswith("threshold_"):
            lines.append(f"| threshold {key.split('_', 1)[1]} | {v['precision']} | {v['recall']} "
                         f"| {v['f1']} | {v['tp']} / {v['fp']} / {v['fn']} |")  # fmt: skip
    lines += ["", "| PII kind | precision | recall | F1 | tp / fp / fn |", "|---|---|---|---|---|"]
    p = result["pii"]
    for kind, v in [*p["per_kind"].items(), ("overall", p["overall"])]:
        lines.append(f"| {kind} | {v['precision']} | {v['recall']} | {v['f1']} "
                     f"| {v['tp']} / {v['fp']} / {v['fn']} |")  # fmt: skip
    lines += ["", "| evaluator (1-2 KB texts, one thread) | calls/s |", "|---|---|"]
    for name, v in result["throughput"].items():
        lines.append(f"| `{name}` | {v['calls_per_s']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--seconds", type=float, default=1.0, help="per evaluator")
    args = parser.parse_args()
    versions = {}
    for dist in ("python-stdnum",):
        try:
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine() | versions,
        "groundedness": groundedness_quality(),
        "pii": pii_quality(),
        "throughput": throughput(args.seconds),
    }
    print(json.dumps(result, indent=2))
    if args.markdown:
        print(markdown(result), file=sys.stderr)


if __name__ == "__main__":
    main()
