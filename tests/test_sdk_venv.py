"""The SDK alone: a fresh virtualenv with only the watchkeeper wheel (no extras) imports and sends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import RunningServer
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_sdk_only_virtualenv_imports_and_sends(server: RunningServer, tmp_path: Path) -> None:
    """pip installs the wheel with no dependencies at all; the SDK sends 100 events to a real
    server and none of the server's libraries can even be imported there."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    (wheel,) = wheels.glob("watchkeeper-*.whl")
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)], check=True
    )
    script = textwrap.dedent(f"""
        import importlib.util, sys
        import watchkeeper
        for name in ("duckdb", "pyarrow", "fastapi", "pydantic", "numpy", "httpx"):
            assert importlib.util.find_spec(name) is None, name + " is installed"
        m = watchkeeper.Monitor("venv-model", url={server.url!r}, api_key={server.ingest_key!r},
                                spool_dir=False)
        for i in range(100):
            m.log(prediction=1, score=0.5, latency_ms=float(i), features={{"i": i}})
        assert m.flush(timeout=20), m.stats()
        m.close()
        print("sent", m.stats()["sent"])
    """)
    out = subprocess.run([str(py), "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "sent 100" in out.stdout

    def counted() -> bool:
        with server.client(server.read_key) as c:
            r = c.get(
                "/api/v1/models/venv-model/metrics", params={"names": "count", "window": "all"}
            )
        return r.status_code == 200 and r.json()["metrics"]["count"][0] == 100

    wait_for(counted)
