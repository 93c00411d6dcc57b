"""How long after a breaching window ends its notification arrives — the real server, its
scheduler and its outbox at their default intervals, a local webhook receiver.

Issue #4's goal: delivered within one window plus 30 seconds of the window that breached,
i.e. at most 30 s after that window ends. For each of ``--samples`` models, a burst of failed
calls lands in one minute (a 1m ``error_rate`` monitor, ``fire_after: 1``), one model per
minute; the receiver timestamps each ``firing`` notification; the lag is receipt minus the
breaching window's end. Then the calls succeed again and the ``resolved`` lag is measured the
same way. The budget of 30 s is the baseline the ratio is quoted against.

    python bench/bench_alert_latency.py [--samples 3] [--json]

Takes about ``samples + 2`` minutes (it waits for real windows to close).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import free_port, machine
from watchkeeper.server import ServerConfig, ServerHandle
from watchkeeper.store.keys import KeyStore

BUDGET_S = 30.0


class Receiver:
    """A webhook receiver that keeps (arrival time, body) of every notification."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.got.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def settings(models: list[str], url: str) -> str:
    monitors = "\n".join(
        f"  - {{name: {m}.errors, model: {m}, metric: error_rate, window: 1m, min_samples: 10,"
        f" condition: {{type: static, op: above, threshold: 0.2}}}}"
        for m in models
    )
    return (
        f"monitors:\n{monitors}\nnotifications:\n"
        f'  channels: [{{name: hook, type: webhook, url: "{url}"}}]\n'
        "  routes: [{channels: [hook]}]\n"
    )


def send(client: httpx.Client, model: str, start: datetime, failed: bool, n: int = 40) -> None:
    """n calls spread over the minute starting at ``start`` (sent as they happen)."""
    events = [
        {
            "event_id": f"{model}-{start:%H%M}-{i}",
            "timestamp": (start + timedelta(seconds=i * 50 / n)).isoformat(),
            "prediction": 1,
            "latency_ms": 10.0,
            "status": "error" if failed and i % 2 else "ok",
        }
        for i in range(n)
    ]
    r = client.post(f"/api/v1/models/{model}/predictions", json={"events": events})
    r.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = [f"m{i}" for i in range(args.samples)]
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        key = KeyStore(data).create("admin")
        config = data / "wk.yaml"
        config.write_text(settings(models, receiver.url))
        handle = ServerHandle(ServerConfig(data_dir=data, port=free_port(), config_file=config))
        handle.start()  # default intervals: the engine every 10 s, the outbox every 1 s
        client = httpx.Client(
            base_url=handle.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        try:
            now = datetime.now(timezone.utc)
            first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            time.sleep((first - now).total_seconds())
            breach_end: dict[str, datetime] = {}
            clean_end: dict[str, datetime] = {}
            # minute k: model k fails, the others are fine; after its breach, model k is clean
            for k in range(len(models) + 1):
                minute = first + timedelta(minutes=k)
                for j, m in enumerate(models):
                    send(client, m, minute, failed=(j == k))
                    if j == k:
                        breach_end[m] = minute + timedelta(minutes=1)
                    elif j == k - 1:
                        clean_end[m] = minute + timedelta(minutes=1)
                rest = (minute + timedelta(minutes=1) - datetime.now(timezone.utc)).total_seconds()
                time.sleep(max(rest, 0))
            deadline = time.time() + 60
            while time.time() < deadline and len(receiver.got) < 2 * len(models):
                time.sleep(0.2)
        finally:
            client.close()
            handle.stop()
            receiver.server.shutdown()
    lags: dict[str, list[float]] = {"firing": [], "resolved": []}
    for at, body in receiver.got:
        model = body["model"]
        end = breach_end[model] if body["kind"] == "firing" else clean_end.get(model)
        if end is not None and body["kind"] in lags:
            lags[body["kind"]].append(at - end.timestamp())
    out = {
        "machine": machine(),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "samples": args.samples,
        "budget_s": BUDGET_S,
        "lags_s": {k: [round(v, 2) for v in vs] for k, vs in lags.items()},
        "max_lag_s": {k: round(max(vs), 2) if vs else None for k, vs in lags.items()},
        "ratio_to_budget": {
            k: round(max(vs) / BUDGET_S, 3) if vs else None for k, vs in lags.items()
        },
        "delivered": {k: len(vs) for k, vs in lags.items()},
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for kind in ("firing", "resolved"):
            print(
                f"{kind:9s} delivered {out['delivered'][kind]}/{args.samples}, lag after the"
                f" window ends: {out['lags_s'][kind]} s (max {out['max_lag_s'][kind]} s,"
                f" budget {BUDGET_S:g} s)"
            )


if __name__ == "__main__":
    main()
