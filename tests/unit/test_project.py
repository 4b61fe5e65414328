"""The project's promises about itself: README commands, CI, CLI guards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.cli import is_loopback, main

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README.md must keep the two set-up commands in the block after <!-- setup -->"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    serve, test = commands
    assert "yardstick serve" in serve and "pytest" in test
    assert test in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_serve_refuses_public_bind_without_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("YARDSTICK_API_KEYS", raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "--insecure" in capsys.readouterr().err


def test_serve_warns_that_the_dask_address_is_not_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_kw: served.append(app))
    monkeypatch.setenv("YARDSTICK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("YARDSTICK_DASK_ADDRESS", "tcp://scheduler:8786")
    assert main(["serve", "--port", "1"]) == 0 and served
    err = capsys.readouterr().err
    assert "tcp://scheduler:8786" in err and "does not use Dask" in err
    monkeypatch.delenv("YARDSTICK_DASK_ADDRESS")
    assert main(["serve", "--port", "1"]) == 0
    assert "Dask" not in capsys.readouterr().err


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, re.M)
    assert len(stages) >= 2 and all("slim" in image for image, _ in stages)
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER (?!root)\w+", runtime, re.M)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert '"yardstick", "serve", "--host", "0.0.0.0"' in runtime
    assert "[test]" not in runtime and "pytest" not in runtime


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff_is_clean(command: list[str]) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "service", "schemas", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"ruff {' '.join(command)} failed; fix with `ruff format` / `ruff check --fix`:\n"
        f"{done.stdout}{done.stderr}"
    )
