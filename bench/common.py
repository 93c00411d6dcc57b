"""Helpers shared by the benchmarks: the machine, free ports, the server subprocess, timings.

Nothing here measures anything; each ``bench_*.py`` prints its own JSON result.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx


def machine() -> dict[str, Any]:
    """What the figures were measured on (put next to every result)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for dist in ("duckdb", "pyarrow", "fastapi", "uvicorn", "httpx", "numpy", "watchkeeper"):
        try:
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        raise ValueError("no values")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "max_ms": round(ms[-1], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MiB (VmRSS from /proc), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def slope_per_minute(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) samples, in value per minute."""
    if len(samples) < 3:
        return None
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 60


class ServerProcess:
    """``watchkeeper.server.serve`` in a child process, on a loopback port."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        settings: str | None = None,
        otlp_workers: int | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings  # YAML written to a settings file the server reads
        self.otlp_workers = otlp_workers  # None: the server's default
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = self.data_dir / "server.log"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        config = ""
        if self.settings is not None:
            path = self.data_dir / "bench-settings.yaml"
            path.write_text(self.settings, encoding="utf-8")
            config = f", config_file=Path({str(path)!r})"
        if self.otlp_workers is not None:
            config += f", otlp_workers={self.otlp_workers}"
        code = (
            "from pathlib import Path\n"
            "from watchkeeper.server import ServerConfig, serve\n"
            f"serve(ServerConfig(Path({str(self.data_dir)!r}), port={self.port}{config}))\n"
        )
        log = self._log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self._log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("server did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
