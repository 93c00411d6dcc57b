"""The background evaluator runner: evaluates ingested LLM calls and stores the results.

A thread of the server (not of the store) that every ``interval_seconds``:

1. for each model, reads the calls (events with a prompt or a response) received after its
   own watermark and at least ``delay_seconds`` ago (the spans of one trace may arrive in
   several exports), in chunks of ``batch_size``, through its own cursor;
2. keeps the calls whose event id falls in the sample (:func:`sample_fraction` below: the
   first 8 bytes of SHA-256 of the UTF-8 event id, big-endian, divided by 2**64, is below
   ``sample``: the same call is always in or out, on every server);
3. evaluates at most ``max_per_minute`` sampled calls per wall-clock minute (the others are
   skipped, counted in :meth:`EvaluatorRunner.stats`, and never evaluated later);
4. runs the enabled label-free evaluators (groundedness needs the call's context: its
   ``context`` field, else the retrieval spans of its trace, :mod:`.context`), the LLM judge
   on its own sample and budget, and the reference evaluators on calls whose actual answer is
   already stored;
5. writes each chunk's evaluations and its new watermark with one store write
   (``record_evaluations``), so a crash re-evaluates at most one chunk (re-evaluation
   replaces, never doubles).

Actual answers that arrive later are followed with a second watermark (on the actuals'
``received_at``): their calls get the reference evaluators then. Reference evaluators run on
every labelled call, whatever the sample and budget (labels are rare and costly).

Ingestion never waits on the runner: it reads through its own cursor (DuckDB's MVCC), and
writes one small request per chunk to the store's writer, which groups it with the rest.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from watchkeeper.evaluators.context import call_context
from watchkeeper.evaluators.grounded import SentenceScorer, groundedness
from watchkeeper.evaluators.pii import find_pii
from watchkeeper.evaluators.reference import exact_match, token_f1
from watchkeeper.evaluators.refusal import detect_refusal
from watchkeeper.evaluators.settings import EvaluatorSettings
from watchkeeper.evaluators.toxicity import score_toxicity

__all__ = [
    "FLAG_BELOW",
    "Budget",
    "EvaluatorRunner",
    "evaluate_call",
    "evaluate_reference",
    "sample_fraction",
    "sampled",
]

log = logging.getLogger("watchkeeper.evaluators")

# A reference score below this flags the call as incorrect (exact match: any miss).
FLAG_BELOW = {"exact_match": 1.0, "token_f1": 0.5, "semantic_similarity": 0.5}
_MAX_SENTENCES_IN_DETAIL = 5
GROUNDED_THRESHOLD = 0.75  # a sentence's lexical support from which it counts as supported


def sample_fraction(event_id: str) -> float:
    """The event's place in [0, 1): SHA-256 of its UTF-8 id, first 8 bytes big-endian / 2**64."""
    digest = hashlib.sha256(event_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def sampled(event_id: str, share: float) -> bool:
    """Whether the call is in a sample of ``share`` (deterministic by event id)."""
    return share >= 1.0 or (share > 0.0 and sample_fraction(event_id) < share)


class Budget:
    """At most ``per_minute`` uses per wall-clock minute (UTC); counts the refusals."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._minute: datetime | None = None
        self._used = 0

    def take(self, now: datetime) -> bool:
        minute = now.replace(second=0, microsecond=0)
        if minute != self._minute:
            self._minute, self._used = minute, 0
        if self._used >= self.per_minute:
            return False
        self._used += 1
        return True

    def spent(self, now: datetime) -> bool:
        """Whether nothing is left for ``now``'s minute."""
        minute = now.replace(second=0, microsecond=0)
        return minute == self._minute and self._used >= self.per_minute


def _row(
    call: Mapping[str, Any],
    evaluator: str,
    score: float | None,
    flagged: bool,
    label: str | None,
    detail: Mapping[str, Any] | None,
    source: str = "auto",
) -> dict[str, Any]:
    return {
        "event_id": call["event_id"],
        "trace_id": call.get("trace_id"),
        "version": call.get("version"),
        "event_ts": call.get("ts"),
        "evaluator": evaluator,
        "score": score,
        "flagged": flagged,
        "label": label,
        "detail": dict(detail) if detail is not None else None,
        "source": source,
    }


def evaluate_call(
    call: Mapping[str, Any],
    enabled: Sequence[str],
    context: Sequence[str] | None,
    scorer: SentenceScorer | None = None,
    threshold: float = GROUNDED_THRESHOLD,
) -> list[dict[str, Any]]:
    """The label-free evaluations of one call (pure).

    * ``groundedness`` (needs a response and a context): score = share of supported
      sentences, flagged when one is unsupported;
    * ``pii`` (prompt and response): score 1.0 when personal data is found, flagged then;
      the detail lists the kinds and counts per side, never the values;
    * ``refusal`` (response): flagged (score 1.0) when it declines; ``label`` is
      ``refusal``, ``handoff`` (a hand-off to a person is not flagged) or ``none``;
    * ``toxicity`` (response): score = share of listed words, flagged when there is one.
    """
    prompt = call.get("prompt") or ""
    response = call.get("response") or ""
    out: list[dict[str, Any]] = []
    for name in enabled:
        if name == "groundedness":
            if not response or not context:
                continue
            g = groundedness(response, list(context), scorer=scorer, threshold=threshold)
            detail = {
                "sentences": len(g.sentences),
                "unsupported": [s[:300] for s in g.unsupported[:_MAX_SENTENCES_IN_DETAIL]],
            }
            label = "ungrounded" if g.hallucination else "grounded"
            out.append(_row(call, name, g.score, g.hallucination, label, detail))
        elif name == "pii":
            sides = {
                side: sorted({f.kind for f in find_pii(text)}) for side, text in
                (("prompt", prompt), ("response", response)) if text
            }  # fmt: skip
            counts = {
                side: {k: sum(f.kind == k for f in find_pii(text)) for k in sides[side]}
                for side, text in (("prompt", prompt), ("response", response))
                if text and sides[side]
            }
            kinds = sorted({k for ks in sides.values() for k in ks})
            out.append(
                _row(call, name, 1.0 if kinds else 0.0, bool(kinds), ",".join(kinds) or "none",
                     {"kinds": kinds, **counts})
            )  # fmt: skip
        elif name == "refusal":
            if not response:
                continue
            r = detect_refusal(response)
            refused = r.kind == "refusal"
            out.append(
                _row(call, name, 1.0 if refused else 0.0, refused, r.kind, {"phrase": r.phrase})
            )
        elif name == "toxicity":
            if not response:
                continue
            t = score_toxicity(response)
            detail = {"words": sorted(set(t.flagged)), "count": len(t.flagged)}
            toxic = bool(t.flagged)
            out.append(_row(call, name, t.score, toxic, "toxic" if toxic else "none", detail))
    return out


def evaluate_reference(
    call: Mapping[str, Any],
    reference: str,
    names: Sequence[str],
    similarity: Callable[[str, str], float] | None = None,
) -> list[dict[str, Any]]:
    """Correctness of the call's response against its actual answer (pure): SQuAD's
    ``exact_match`` and ``token_f1`` (:mod:`.reference`) and ``semantic_similarity``
    (``similarity``; skipped without one); each flagged below :data:`FLAG_BELOW`."""
    response = call.get("response")
    if response is None:
        return []
    out = []
    for name in names:
        if name == "exact_match":
            score = exact_match(response, reference)
        elif name == "token_f1":
            score = token_f1(response, reference)
        elif name == "semantic_similarity" and similarity is not None:
            score = float(similarity(response, reference))
        else:
            continue
        flagged = score < FLAG_BELOW[name]
        label = "incorrect" if flagged else "correct"
        out.append(_row(call, name, score, flagged, label, None, source="reference"))
    return out


def _optional(module: str) -> Any:
    """A module written beside this one that may be absent (judge, embeddings)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


class EvaluatorRunner:
    """Evaluates new LLM calls in the background; :meth:`run_once` does one pass now."""

    def __init__(self, store: Any, settings: EvaluatorSettings, busy_share: float = 0.1) -> None:
        self.store = store
        self.settings = settings
        # On its thread, while other writes (ingestion) reach the store, the runner is busy
        # at most this share of the time: after each chunk it rests in proportion. It also
        # yields the GIL after each call. Ingestion (same process) is thus never starved by
        # evaluation; with no other writes the runner goes at full speed.
        self.busy_share = min(max(busy_share, 0.01), 1.0)
        self._paced = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time (thread or run_once)
        self._budget = Budget(settings.max_per_minute)
        judge = settings.judge
        self._judge_budget = Budget(judge.max_per_minute if judge else 0)
        self._judge: Any = None
        self._judge_error: type[BaseException] | None = None
        self._similarity: Callable[[str, str], float] | None = None
        self._scorer: SentenceScorer | None = None
        self._threshold = GROUNDED_THRESHOLD
        self._ready = False
        self._counters: dict[str, float] = {
            "runs": 0,
            "calls_seen": 0,
            "calls_evaluated": 0,
            "calls_not_sampled": 0,
            "calls_skipped_budget": 0,
            "calls_without_context": 0,
            "reference_evaluated": 0,
            "human_verdicts": 0,
            "judge_calls": 0,
            "judge_skipped_budget": 0,
            "judge_errors": 0,
            "judge_skipped_inputs": 0,
            "evaluations_written": 0,
            "errors": 0,
            "last_run_seconds": 0.0,
            "paced_seconds": 0.0,
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the thread (nothing when ``interval_seconds`` is 0: tests call run_once)."""
        if self.settings.interval_seconds <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="wk-evaluators", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        from watchkeeper.store.base import StoreClosedError

        self._paced = True
        while not self._stop.wait(self.settings.interval_seconds):
            try:
                self.run_once()
            except StoreClosedError:
                return
            except Exception:
                self._counters["errors"] += 1
                log.exception("the evaluator runner failed; trying again next run")

    def stats(self) -> dict[str, float]:
        """Counters since start (for ``GET /metrics`` and tests)."""
        return dict(self._counters)

    # ------------------------------------------------------------------ collaborators
    def _prepare(self) -> None:
        """Load the optional judge and embeddings once, on the runner's first pass."""
        if self._ready:
            return
        self._ready = True
        emb = _optional("watchkeeper.evaluators.embeddings")
        mode = self.settings.embeddings
        if emb is not None:
            try:
                use = bool(emb.use_embeddings(mode))
            except Exception:
                log.exception("sentence embeddings unavailable; lexical scores instead")
                use, mode = False, "off"
            embedder = emb.shared_embedder() if use else None
            sim = emb.semantic_similarity
            self._similarity = lambda a, b: float(sim(a, b, embedder, mode=mode))
            # Groundedness stays lexical unless embeddings are asked for by name: on the
            # labelled set the embedding scorer misses more hallucinations (recall 0.73
            # against 0.85, BENCHMARKS.md) at a thousandth of the speed.
            if use and mode == "on":
                self._scorer, self._threshold = emb.scorer(mode, embedder)
        judge = self.settings.judge
        if judge is not None:
            mod = _optional("watchkeeper.evaluators.judge")
            if mod is None:
                log.warning("evaluators.judge is set but the judge module is missing")
            else:
                try:
                    config = mod.JudgeConfig(
                        url=judge.url,
                        model=judge.model,
                        api_key=judge.api_key,
                        api_key_env=judge.api_key_env,
                        timeout_seconds=judge.timeout_seconds,
                        # the runner's own budget limits calls; the client's bucket (one
                        # request per rubric) must not make it wait within that budget
                        max_per_minute=float(max(judge.max_per_minute * len(judge.rubrics), 1)),
                        burst=max(judge.max_per_minute * len(judge.rubrics), 1),
                    )
                    self._judge = mod.Judge(config)
                    self._judge_error = mod.JudgeError
                except Exception:
                    log.exception("the LLM judge could not be set up; running without it")

    # ------------------------------------------------------------------ one pass
    def run_once(self, now: datetime | None = None) -> int:
        """Evaluate what is due at ``now`` (default: the wall clock); the evaluations
        written. ``now`` also decides the budget's minute, so tests are deterministic."""
        now = now or datetime.now(timezone.utc)
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        until = now - timedelta(seconds=self.settings.delay_seconds)
        written = 0
        t0 = time.perf_counter()
        with self._lock:
            self._prepare()
            for mid, _name in self.store.llm_model_ids():
                written += self._pass(mid, "events", now, until)
                if self.settings.reference:
                    written += self._pass(mid, "actuals", now, until)
            self._counters["runs"] += 1
            self._counters["evaluations_written"] += written
            self._counters["last_run_seconds"] = time.perf_counter() - t0
        return written

    def _pass(self, mid: int, kind: str, now: datetime, until: datetime) -> int:
        read = self.store.llm_events_after if kind == "events" else self.store.llm_actuals_after
        after = self.store.eval_watermark(mid, kind)
        written = 0
        size = self.settings.batch_size
        while not (self._paced and self._stop.is_set()):
            t0 = time.perf_counter()
            writes = self._writes()
            if kind == "events":
                # a spent budget skips every call: read no texts (but labelled responses)
                calls = read(mid, after, until, size, texts=not self._budget.spent(now))
            else:
                calls = read(mid, after, until, size)
            if not calls:
                return written
            if kind == "events":
                chunk = self._evaluate(calls, now)
                # people's verdicts that arrived before their call (feedback is recorded
                # right away when the call is already stored; a repeat replaces it)
                human = self.store.human_verdicts(mid, [str(c["event_id"]) for c in calls])
                self._counters["human_verdicts"] += len(human)
                chunk += human
            else:
                chunk = self._references(calls)
            last = calls[-1]
            after = (last["received_at"], last["event_id"])
            written += int(self.store.record_evaluations(mid, chunk, watermarks=[(kind, *after)]))
            if len(calls) < size:
                return written
            if self._paced and self.busy_share < 1.0 and self._writes() - writes > 1:
                busy = time.perf_counter() - t0  # others wrote meanwhile: make room
                self._counters["paced_seconds"] += busy * (1.0 - self.busy_share) / self.busy_share
                self._stop.wait(busy * (1.0 - self.busy_share) / self.busy_share)
        return written

    def _writes(self) -> float:
        """Requests the store has committed (ours included): a sign of ingestion."""
        return float(self.store.stats().get("committed_requests", 0.0))

    def _references(self, calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for call in calls:
            if call.get("label") is not None:
                got = evaluate_reference(
                    call, str(call["label"]), self.settings.reference, self._similarity
                )
                self._counters["reference_evaluated"] += bool(got)
                rows += got
        return rows

    def _evaluate(self, calls: Sequence[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
        s = self.settings
        rows: list[dict[str, Any]] = []
        for call in calls:
            self._counters["calls_seen"] += 1
            if call.get("label") is not None and s.reference:
                rows += self._references([call])
            if not sampled(str(call["event_id"]), s.sample):
                self._counters["calls_not_sampled"] += 1
                continue
            if not self._budget.take(now):
                self._counters["calls_skipped_budget"] += 1
                continue
            self._counters["calls_evaluated"] += 1
            wants = "groundedness" in s.enabled or (
                s.judge is not None and "groundedness" in s.judge.rubrics
            )
            context = self._context(call) if wants else None
            if wants and not context:
                self._counters["calls_without_context"] += 1
            rows += evaluate_call(call, s.enabled, context, self._scorer, self._threshold)
            if self._paced:
                time.sleep(0)  # let a waiting thread (the store's writer) take the GIL
            if self._judge is not None:
                rows += self._judged(call, context, now)
        return rows

    def _context(self, call: Mapping[str, Any]) -> list[str] | None:
        own = call.get("context")
        if isinstance(own, str) and own.strip():
            return [own]
        trace_id = call.get("trace_id")
        spans_of = getattr(self.store, "trace_spans", None)
        if not trace_id or spans_of is None:
            return None
        try:  # near the call's time: reads that period's spans, not every trace id
            spans = spans_of(trace_id, near=call.get("ts"))
        except Exception:
            log.debug("reading the spans of trace %s failed", trace_id, exc_info=True)
            return None
        return call_context(spans, str(call["event_id"])) or None

    def _judged(
        self, call: Mapping[str, Any], context: Sequence[str] | None, now: datetime
    ) -> list[dict[str, Any]]:
        judge = self.settings.judge
        assert judge is not None
        if not sampled(str(call["event_id"]), judge.sample):
            return []
        if not self._judge_budget.take(now):
            self._counters["judge_skipped_budget"] += 1
            return []
        rows = []
        prompt, response = call.get("prompt") or "", call.get("response") or ""
        joined = "\n\n".join(context) if context else None
        for rubric in judge.rubrics:
            try:
                got = self._judge.evaluate(
                    rubric, prompt=prompt, response=response, context=joined,
                    reference=call.get("label"),
                )  # fmt: skip
                self._counters["judge_calls"] += 1
            except ValueError:  # the rubric needs a context or a reference the call lacks
                self._counters["judge_skipped_inputs"] += 1
                continue
            except Exception as exc:
                self._counters["judge_calls"] += 1
                if self._judge_error is None or not isinstance(exc, self._judge_error):
                    log.exception("the LLM judge failed unexpectedly")
                self._counters["judge_errors"] += 1
                continue
            detail = {
                "reason": getattr(got, "reason", None),
                "cached": getattr(got, "cached", None),
            }
            rows.append(
                _row(call, f"judge_{rubric}", float(got.score), not bool(got.passed),
                     getattr(got, "label", None), detail, source="judge")
            )  # fmt: skip
        return rows
