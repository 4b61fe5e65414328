"""A real HTTP model server with known behaviour, on loopback, for the robustness tests.

Models (KServe v1: POST {"instances": [...]} -> {"predictions": [...]}):
- ``fair``: score = clip(amount / 1000, 0, 1); ignores ``gender``.
- ``biased``: score = 0.3, plus 0.4 when gender == "F".
- ``labels``: answers class labels (1 when amount > 500 else 0), no probabilities.
- ``garbage``: answers text; ``short``: one prediction too few; ``slow``: sleeps past any timeout;
- ``flaky``: answers 503 to every other call.
- ``busy``: answers 429 with ``Retry-After: 1`` to every other call (the first included).

Webhook receivers: ``/hooks/jobs`` records each notification and answers 204; ``/hooks/busy`` answers
429 with ``Retry-After: 1`` to every other notification (the first included), 204 to the rest.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def _score(model: str, row: dict[str, Any]) -> float | int:
    amount = float(row.get("amount") or 0.0)
    if model == "fair":
        return min(max(amount / 1000, 0.0), 1.0)
    if model == "biased":
        return 0.3 + (0.4 if row.get("gender") == "F" else 0.0)
    if model == "labels":
        return 1 if amount > 500 else 0
    raise KeyError(model)


class ModelServer:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.hooks: list[dict[str, Any]] = []
        self.busy_hooks: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, body)
        app = Starlette(
            routes=[
                Route("/v1/models/{model}:predict", self._predict, methods=["POST"]),
                Route("/hooks/jobs", self._hook, methods=["POST"]),
                Route("/hooks/busy", self._busy_hook, methods=["POST"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def endpoint(self, model: str) -> str:
        return f"{self.url}/v1/models/{model}:predict"

    async def _hook(self, request: Request) -> Response:
        """A webhook receiver: records each notification, answers 204."""
        self.hooks.append(await request.json())
        return Response(status_code=204)

    async def _busy_hook(self, request: Request) -> Response:
        self.busy_hooks.append((time.monotonic(), await request.json()))
        if len(self.busy_hooks) % 2 == 1:
            return PlainTextResponse("slow down", status_code=429, headers={"retry-after": "1"})
        return Response(status_code=204)

    async def _predict(self, request: Request) -> Response:
        model = request.path_params["model"]
        self.calls[model] += 1
        body = await request.json()
        instances = body["instances"]
        if model == "redirect":
            return Response(status_code=302, headers={"location": "http://169.254.169.254/latest/meta-data/"})
        if model == "garbage":
            return PlainTextResponse("definitely not json")
        if model == "slow":
            await asyncio.sleep(3)
        if model == "flaky" and self.calls[model] % 2 == 1:
            return PlainTextResponse("try again", status_code=503)
        if model == "busy" and self.calls[model] % 2 == 1:
            return PlainTextResponse("slow down", status_code=429, headers={"retry-after": "1"})
        target = "fair" if model in ("flaky", "slow", "short", "busy") else model
        predictions = [_score(target, row) for row in instances]
        if model == "short":
            predictions = predictions[:-1]
        return JSONResponse({"predictions": predictions})

    def __enter__(self) -> ModelServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("model server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
