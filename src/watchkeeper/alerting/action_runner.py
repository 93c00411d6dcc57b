"""Doing automated responses: the runner thread, and what each type of action does.

The definitions and their settings section are in :mod:`watchkeeper.alerting.actions`. The
:class:`ActionRunner` claims queued runs from the store and does each on a worker thread of
its own, with a timeout, so the alert engine never waits for an action; each run's outcome
(status, exit code or HTTP status, output, error) is recorded in the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, Literal

from watchkeeper.alerting.actions import (
    ActionBase,
    ActionsConfig,
    CommandAction,
    FallbackAction,
    RollbackAction,
    WebhookAction,
)
from watchkeeper.alerting.notify import DeliveryError, _env, encode, sign
from watchkeeper.store.base import StoreClosedError, UnknownModelError

log = logging.getLogger("watchkeeper.actions")

OUTPUT_LIMIT = 16 * 1024  # bytes kept of each output stream: the first and the last half
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a command past its timeout


@dataclass(frozen=True)
class Outcome:
    """How a run ended."""

    status: Literal["succeeded", "failed", "timed_out", "interrupted"]
    output: dict[str, Any] | None = None
    error: str | None = None
    exit_code: int | None = None


class ActionRunner:
    """Does queued runs on worker threads (``run_once`` does them in the caller, for tests).

    ``start`` first marks runs left ``running`` by a crash ``interrupted`` (they are not run
    again), then claims queued runs every ``interval`` seconds, at most ``workers`` at once.
    """

    def __init__(
        self, store: Any, config: ActionsConfig, interval: float = 1.0, workers: int = 4
    ) -> None:
        self.store = store
        self.config = config
        self.interval = interval
        self.workers = workers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self.interrupted = 0  # runs found running at start
        self.finished: dict[str, int] = {}  # runs done by this runner, by status

    def start(self) -> None:
        self.interrupted = self.store.interrupt_action_runs()
        if self.interrupted:
            log.warning("%d action run(s) were cut off by a crash; marked interrupted, not re-run",
                        self.interrupted)  # fmt: skip
        if self.interval <= 0:
            return
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="wk-action")
        self._thread = threading.Thread(target=self._loop, name="wk-actions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; commands still running are terminated and recorded interrupted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._dispatch()
            except StoreClosedError:
                return
            except Exception:
                log.exception("claiming action runs failed; trying again")

    def _dispatch(self) -> None:
        assert self._pool is not None
        with self._lock:
            free = self.workers - self._busy
        if free <= 0:
            return
        for run in self.store.claim_action_runs(free):
            with self._lock:
                self._busy += 1
            self._pool.submit(self._run_and_release, run)

    def _run_and_release(self, run: Mapping[str, Any]) -> None:
        try:
            self.execute(run)
        finally:
            with self._lock:
                self._busy -= 1

    def run_once(self) -> int:
        """Claim every queued run and do each now, in this thread; returns how many."""
        runs = self.store.claim_action_runs(100)
        for run in runs:
            self.execute(run)
        return len(runs)

    def execute(self, run: Mapping[str, Any]) -> str:
        """Do one claimed run and record its outcome; returns its final status."""
        action = self.config.action(run["action"])
        try:
            if action is None:
                outcome = Outcome("failed", error=f"action {run['action']} left the settings")
            elif action.kind != run["type"]:
                outcome = Outcome(
                    "failed",
                    error=f"action {action.name} is a {action.kind} action now, not a"
                    f" {run['type']} one as when the run was requested",
                )
            else:
                outcome = self._do(action, run)
        except Exception as exc:  # an action's failure is its run's outcome, not ours
            log.exception("action run %s failed", run["id"])
            outcome = Outcome("failed", error=f"{type(exc).__name__}: {exc}")
        try:
            self.store.finish_action_run(
                run["id"],
                outcome.status,
                exit_code=outcome.exit_code,
                output=outcome.output,
                error=outcome.error,
            )
        except StoreClosedError:
            log.warning("run %s ended %s after the store closed", run["id"], outcome.status)
        with self._lock:
            self.finished[outcome.status] = self.finished.get(outcome.status, 0) + 1
        if outcome.status != "succeeded":
            log.warning("action %s (run %s) %s: %s", run["action"], run["id"], outcome.status,
                        outcome.error)  # fmt: skip
        return outcome.status

    def _do(self, action: ActionBase, run: Mapping[str, Any]) -> Outcome:
        if isinstance(action, WebhookAction):
            return call_webhook(action, run)
        if isinstance(action, CommandAction):
            return run_command(action, run, self._stop)
        if isinstance(action, RollbackAction):
            return roll_back(action, run, self.store)
        assert isinstance(action, FallbackAction)
        return fall_back(action, run, self.store)


# --------------------------------------------------------------------------- webhook


def call_webhook(action: WebhookAction, run: Mapping[str, Any]) -> Outcome:
    """POST the alert JSON; 2xx succeeds. The response's status and body are kept."""
    body = encode(run["payload"])
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "watchkeeper",
        "X-Watchkeeper-Action": action.name,
        "X-Watchkeeper-Run": str(run["id"]),
        **action.headers,
    }
    try:
        for header, var in action.headers_env.items():
            headers[header] = _env(var, f"action {action.name} header {header}")
        if action.secret_env is not None:
            secret = _env(action.secret_env, f"action {action.name}")
            headers["X-Watchkeeper-Signature"] = sign(secret.encode(), body)
    except DeliveryError as exc:
        return Outcome("failed", error=str(exc))
    req = urllib.request.Request(action.url, data=body, headers=headers, method="POST")
    deadline = time.monotonic() + action.timeout_s
    capture = _Capture()
    try:
        with urllib.request.urlopen(req, timeout=action.timeout_s) as resp:
            while chunk := resp.read(8192):
                capture.add(chunk)
                if time.monotonic() > deadline:
                    return Outcome(
                        "timed_out",
                        {"status": resp.status, **capture.dump("body")},
                        f"the response took longer than {action.timeout_s:g} s",
                        resp.status,
                    )
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        capture.add(exc.read(OUTPUT_LIMIT))
        return Outcome(
            "failed", {"status": exc.code, **capture.dump("body")}, f"HTTP {exc.code}", exc.code
        )
    except TimeoutError:
        return Outcome("timed_out", error=f"no answer within {action.timeout_s:g} s")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            return Outcome("timed_out", error=f"no answer within {action.timeout_s:g} s")
        return Outcome("failed", error=f"{type(exc).__name__}: {reason}")
    output = {"status": status, **capture.dump("body")}
    if 200 <= status < 300:
        return Outcome("succeeded", output, None, status)
    return Outcome("failed", output, f"HTTP {status}", status)


class _Capture:
    """Keeps the first and the last ``OUTPUT_LIMIT / 2`` bytes of a stream and counts all."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        half = OUTPUT_LIMIT // 2
        room = half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[:-half]

    def text(self) -> str:
        kept = len(self.head) + len(self.tail)
        head = self.head.decode(errors="replace")
        if kept == self.total:
            return head + self.tail.decode(errors="replace")
        cut = self.total - kept
        return f"{head}\n… [{cut} bytes cut] …\n{self.tail.decode(errors='replace')}"

    def dump(self, name: str) -> dict[str, Any]:
        return {
            name: self.text(),
            f"{name}_bytes": self.total,
            f"{name}_truncated": self.total > len(self.head) + len(self.tail),
        }


# --------------------------------------------------------------------------- command


def run_command(
    action: CommandAction, run: Mapping[str, Any], stop: threading.Event | None = None
) -> Outcome:
    """Run ``argv`` in a process group of its own with the alert JSON on standard input;
    exit 0 succeeds. Past the timeout (or when ``stop`` is set) the group is terminated."""
    base = dict(os.environ) if action.inherit_env else _minimal_env()
    env = {
        **base,
        **action.env,
        "WATCHKEEPER_ACTION": action.name,
        "WATCHKEEPER_RUN_ID": str(run["id"]),
        "WATCHKEEPER_ALERT_ID": str(run["alert_id"]),
        "WATCHKEEPER_MODEL": str(run["model"]),
    }
    try:
        proc = subprocess.Popen(
            action.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=action.cwd,
            env=env,
            start_new_session=True,  # its own process group: a timeout ends its children too
        )
    except OSError as exc:
        return Outcome("failed", error=f"cannot start {action.argv[0]}: {exc}")
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = _Capture(), _Capture()
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
        threading.Thread(target=_feed, args=(proc.stdin, encode(run["payload"])), daemon=True),
    ]
    for t in readers:
        t.start()
    deadline = time.monotonic() + action.timeout_s
    ended: Literal["exited", "timed_out", "interrupted"] = "exited"
    while True:
        try:
            proc.wait(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            if stop is not None and stop.is_set():
                ended = "interrupted"
            elif time.monotonic() >= deadline:
                ended = "timed_out"
            else:
                continue
            _kill_group(proc)
            break
    for t in readers[:2]:
        t.join(timeout=KILL_GRACE)
        if t.is_alive():  # a child outlived the command and holds the pipe: end the group
            _signal_group(proc.pid, signal.SIGKILL)
            t.join(timeout=KILL_GRACE)
    output = {**out.dump("stdout"), **err.dump("stderr")}
    code = proc.returncode
    if ended == "timed_out":
        return Outcome(
            "timed_out", output, f"still running after {action.timeout_s:g} s; terminated", code
        )
    if ended == "interrupted":
        return Outcome("interrupted", output, "the server stopped while it ran; terminated", code)
    if code == 0:
        return Outcome("succeeded", output, None, code)
    why = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
    return Outcome("failed", output, why, code)


def _minimal_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def _drain(stream: IO[bytes], capture: _Capture) -> None:
    with stream:
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            capture.add(chunk)


def _feed(stream: IO[bytes], data: bytes) -> None:
    try:
        with stream:
            stream.write(data)
    except (BrokenPipeError, OSError):
        pass  # the command does not read its input: fine


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


# --------------------------------------------------------------------------- rollback


def _versions_by_recency(store: Any, model: str) -> list[str]:
    """The model's versions, the most recently seen first."""
    try:
        info = store.get_model(model)
    except UnknownModelError:
        return []
    seen = [v for v in info.versions if v.version]
    seen.sort(key=lambda v: (v.last_seen is not None, v.last_seen), reverse=True)
    return [str(v.version) for v in seen]


def rollback_target(
    store: Any, model: str, alert_version: str | None
) -> tuple[str | None, str | None, str]:
    """(current, target, where the target came from) for a rollback of ``model``.

    The current version is the serving one, else the alert's (a monitor of one version),
    else the most recently seen. The target is the newest serving-history entry whose version
    is neither the current one, nor the alert's, nor one an earlier rollback moved away from;
    without such an entry, the most recently seen other version of the model. None: nothing
    to roll back to.
    """
    serving = store.get_serving(model)
    seen = _versions_by_recency(store, model)
    current = (serving or {}).get("version") or alert_version or (seen[0] if seen else None)
    avoid = {current, alert_version}
    for r in store.list_action_runs(model=model, status="succeeded", limit=1000):
        if r["type"] == "rollback" and isinstance(r["output"], dict):
            avoid.add(r["output"].get("from"))  # found unhealthy once already
    for change in store.serving_history(model, 1000):
        if change["version"] and change["version"] not in avoid:
            return current, str(change["version"]), "serving history"
    for version in seen:
        if version not in avoid:
            return current, version, "versions seen"
    return current, None, ""


def roll_back(action: RollbackAction, run: Mapping[str, Any], store: Any) -> Outcome:
    """Point the serving version (and the MLflow alias) at the previous healthy version."""
    model = str(run["model"])
    alert = run["payload"] or {}
    current, target, source = rollback_target(store, model, alert.get("model_version"))
    if target is None:
        return Outcome(
            "failed",
            {"model": model, "from": current, "to": None},
            f"no previous healthy version of {model} to roll back to: the serving history and"
            f" the versions seen hold none other than {current or 'the current one'} (or"
            " only versions rolled back from before)",
        )
    output: dict[str, Any] = {"model": model, "from": current, "to": target, "chosen_from": source}
    if action.mlflow is not None:
        from watchkeeper.integrations.mlflow_registry import move_alias

        registered = action.mlflow.registered_model or model
        try:  # first: when MLflow refuses, the serving version stays as it is
            before = move_alias(action.mlflow.tracking_uri, registered, action.mlflow.alias, target)
        except Exception as exc:
            return Outcome(
                "failed",
                output,
                f"the serving version was not changed: {type(exc).__name__}: {exc}",
            )
        output["mlflow"] = {
            "registered_model": registered,
            "alias": action.mlflow.alias,
            "from": before,
            "to": target,
        }
    serving = store.get_serving(model) or {}
    store.set_serving(
        model,
        target,
        fallback=serving.get("fallback"),
        by=f"action:{action.name}",
        reason=f"rollback from {current or 'unknown'}: {_why(alert)}",
        alert_id=run["alert_id"],
    )
    return Outcome("succeeded", output)


def _why(alert: Mapping[str, Any]) -> str:
    value = alert.get("value")
    shown = "no data" if value is None else f"{float(value):.4g}"
    return f"{alert.get('monitor')} {alert.get('kind')} ({alert.get('metric')} = {shown})"


# --------------------------------------------------------------------------- fallback


def fall_back(action: FallbackAction, run: Mapping[str, Any], store: Any) -> Outcome:
    """Set the model's fallback to ``target``; an undo run (the alert resolved) clears it
    if it still is ``target`` (someone may have set another one since)."""
    model = str(run["model"])
    alert = run["payload"] or {}
    serving = store.get_serving(model) or {}
    version, before = serving.get("version"), serving.get("fallback")
    if run["undo"]:
        if before != action.target:
            return Outcome(
                "succeeded",
                {"model": model, "version": version, "from": before, "to": before,
                 "changed": False},
                None,
            )  # fmt: skip
        after = None
        reason = f"fallback {action.target} cleared: {_why(alert)}"
    else:
        after = action.target
        reason = f"fallback to {action.target}: {_why(alert)}"
    store.set_serving(
        model,
        version,
        fallback=after,
        by=f"action:{action.name}",
        reason=reason,
        alert_id=run["alert_id"],
    )
    return Outcome(
        "succeeded",
        {"model": model, "version": version, "from": before, "to": after, "changed": True},
    )


__all__: Sequence[str] = (
    "ActionRunner",
    "Outcome",
    "call_webhook",
    "fall_back",
    "roll_back",
    "rollback_target",
    "run_command",
)
