"""Docs are tested: every metric, endpoint, CLI command, option and setting is documented,
and the README's Python example runs against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.conftest import RunningServer
from tests.helpers import wait_for
from watchkeeper.metrics import METRICS
from watchkeeper.server import SETTINGS_KEYS, ServerConfig, create_app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_every_metric_is_documented() -> None:
    """Each metric name in the registry has a row in docs/metrics.md."""
    text = (DOCS / "metrics.md").read_text()
    missing = [name for name in METRICS if f"| `{name}` |" not in text]
    assert not missing, f"undocumented metrics: {missing}"


def test_every_endpoint_is_documented(tmp_path: Path) -> None:
    """Each route of the OpenAPI document has a heading in docs/api.md."""
    app = create_app(ServerConfig(data_dir=tmp_path))
    text = (DOCS / "api.md").read_text()
    missing = [
        f"{method.upper()} {path}"
        for path, ops in app.openapi()["paths"].items()
        for method in ops
        if f"`{method.upper()} {path}`" not in text
    ]
    assert not missing, f"undocumented endpoints: {missing}"


def _commands(group: click.Group, prefix: str = "watchkeeper") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix} {name}"
        if isinstance(cmd, click.Group):
            out += _commands(cmd, full)
        else:
            out.append((full, cmd))
    return out


def test_every_cli_command_and_option_is_documented() -> None:
    """Each CLI command and each of its options appears in docs/cli.md."""
    from watchkeeper.cli.main import main

    text = (DOCS / "cli.md").read_text()
    missing = []
    assert isinstance(main, click.Group)
    for full, cmd in _commands(main):
        if f"`{full}" not in text:
            missing.append(full)
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help" and f"`{opt}" not in text:
                    missing.append(f"{full} {opt}")
    assert not missing, f"undocumented: {missing}"


def test_every_setting_is_documented() -> None:
    """Each key of the config file's store section appears in docs/cli.md."""
    text = (DOCS / "cli.md").read_text()
    assert all(f"`{key}`" in text for key in SETTINGS_KEYS)


@pytest.mark.slow
def test_readme_python_example_runs(server: RunningServer, tmp_path: Path) -> None:
    """The README's SDK example, pointed at a real server, runs and its events arrive."""
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    code = block.replace("http://127.0.0.1:8000", server.url).replace(
        '"wk_ingest_..."', repr(server.ingest_key)
    )
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr

    def arrived() -> bool:
        with server.client(server.read_key) as c:
            r = c.get(
                "/api/v1/models/fraud-scorer/metrics", params={"names": "count", "window": "all"}
            )
        return r.status_code == 200 and r.json()["metrics"]["count"][0] == 2

    wait_for(arrived)


def test_readme_settings_example_is_valid(tmp_path: Path) -> None:
    """The README's settings file passes `watchkeeper monitors check`."""
    from click.testing import CliRunner

    from watchkeeper.cli.main import main

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Watch, warn, act") :]
    block = section[section.index("```yaml") + len("```yaml") :]
    path = tmp_path / "watchkeeper.yaml"
    path.write_text(block[: block.index("```")])
    result = CliRunner().invoke(main, ["monitors", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "1 monitor, 1 default set, 1 action, 1 channel OK"
