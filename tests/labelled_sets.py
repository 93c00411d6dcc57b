"""The labelled evaluator sets (``tests/data/evaluators``) and how an evaluator is scored on
them, shared by the tests and ``bench/bench_evaluators.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from watchkeeper.evaluators.grounded import groundedness
from watchkeeper.evaluators.pii import KINDS, find_pii

DATA = Path(__file__).parent / "data" / "evaluators"


def rows(name: str) -> list[dict[str, Any]]:
    """The examples of one labelled set (a JSON object per line)."""
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line]


def hallucination_counts(examples: list[dict[str, Any]], **kwargs: Any) -> tuple[int, ...]:
    """(tp, fp, fn, tn) of ``groundedness(..., **kwargs)`` on groundedness.jsonl examples,
    a hallucination being the positive class."""
    tp = fp = fn = tn = 0
    for row in examples:
        flagged = groundedness(row["response"], row["context"], **kwargs).hallucination
        actual = not row["grounded"]
        tp += flagged and actual
        fp += flagged and not actual
        fn += actual and not flagged
        tn += not actual and not flagged
    return tp, fp, fn, tn


def pii_counts(examples: list[dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """Per PII kind, (tp, fp, fn) of ``find_pii`` on pii.jsonl examples: a finding counts only
    with the exact kind, start and end."""
    counts = {k: [0, 0, 0] for k in KINDS}
    for row in examples:
        text = row["text"]
        want = set()
        for span in row["pii"]:
            start = text.index(span["text"])
            want.add((span["kind"], start, start + len(span["text"])))
        got = {(f.kind, f.start, f.end) for f in find_pii(text)}
        for i, found in enumerate((got & want, got - want, want - got)):
            for kind, *_ in found:
                counts[kind][i] += 1
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}
