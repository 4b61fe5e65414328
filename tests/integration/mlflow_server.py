"""A real MLflow tracking server on loopback, and MLflow's own client, for the MLflow tests.

MLflow is not a dependency of Yardstick (it speaks MLflow's REST API): the server and the client
come from a separate virtual environment, ``.venv-mlflow`` beside the checkout (``.ci/run``
makes it with ``pip install mlflow``), or the one ``YARDSTICK_TEST_MLFLOW`` names. Scripts run in
that environment's Python print one JSON document, which the tests read: what MLflow itself says
is the reference the tests compare against.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def mlflow_env() -> Path | None:
    """The virtual environment holding MLflow, if there is one."""
    named = os.environ.get("YARDSTICK_TEST_MLFLOW")
    venv = Path(named) if named else ROOT / ".venv-mlflow"
    return venv if (venv / "bin" / "mlflow").exists() else None


class MlflowServer:
    def __init__(self, venv: Path, workdir: Path) -> None:
        self.venv = venv
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "mlflow-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MlflowServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            command = [
                str(self.venv / "bin" / "mlflow"), "server",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--artifacts-destination", str(self.workdir / "artifacts"),
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        what = f"mlflow server on {self.url} (log: {self.log})"
        wait_until(self._ready, timeout=120, what=what, interval=0.2)
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text()[-3000:]
            raise AssertionError(f"mlflow server exited with {self.proc.returncode}:\n{tail}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, script: str, **values: Any) -> Any:
        """Run ``script`` with MLflow's client against this server; ``values`` are its globals
        (as JSON); it sets ``out``, which comes back decoded."""
        program = (
            "import json, sys, mlflow\n"
            f"mlflow.set_tracking_uri({self.url!r})\n"
            "globals().update(json.loads(sys.stdin.read()))\n"
            "client = mlflow.MlflowClient()\n" + textwrap.dedent(script) + "\nprint(json.dumps(out))\n"
        )
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", program],
            input=json.dumps(values),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.workdir,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])
