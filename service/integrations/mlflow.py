"""MLflow's tracking server, over its REST API, through the outbound-safe client.

Yardstick fits next to MLflow rather than replacing it: a run can be imported from MLflow
(params, tags and every metric's full history), and an evaluation can be exported to MLflow
(metrics with their interval bounds, the request as params, the result and the HTML report as
artifacts, and tags linking back to the job).

No MLflow library is needed: the REST API (``/api/2.0/mlflow/...``, stable since MLflow 1.0,
and the artifact proxy ``/api/2.0/mlflow-artifacts/...`` of servers that serve artifacts, the
default since MLflow 2) is a handful of JSON calls, and going through
:func:`service.integrations.outbound.outbound_client` makes the tracking URI obey
``YARDSTICK_OUTBOUND_ALLOW`` like every other URL a caller chooses. Limits of ``log-batch``
(1000 metrics, 100 params, 100 tags, 1000 entries in all per call) are respected by chunking.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from service.integrations.outbound import OutboundClient, OutboundError, request_json

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
HISTORY_PAGE = 25_000
MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS = 1000, 100, 100
MAX_PARAM_CHARS = 6000
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
STATUS_TO_OURS = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished", "FAILED": "failed",
                  "KILLED": "killed"}  # fmt: skip


@dataclass
class MlflowRun:
    """What an import copies of an MLflow run."""

    run_id: str
    experiment_id: str
    name: str | None
    status: str
    start_ms: int | None
    end_ms: int | None
    params: dict[str, str]
    tags: dict[str, str]
    #: metric name -> [(step, value, timestamp ms)], in MLflow's order
    histories: dict[str, list[tuple[int, float, int]]] = field(default_factory=dict)


class Mlflow:
    """One tracking server. ``client`` must come from ``outbound_client``."""

    def __init__(self, tracking_uri: str, client: OutboundClient) -> None:
        self.base = tracking_uri.rstrip("/")
        self.client = client

    async def _call(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, payload: Any = None
    ) -> Any:
        import orjson

        content = None if payload is None else orjson.dumps(payload)
        return await request_json(
            self.client,
            method,
            f"{self.base}{path}",
            params=params,
            content=content,
            content_type=None if content is None else "application/json",
            max_bytes=MAX_RESPONSE_BYTES,
        )

    # -- import --------------------------------------------------------------------------------

    async def read_run(self, run_id: str) -> MlflowRun:
        answer = await self._call("GET", f"{API}/runs/get", params={"run_id": run_id})
        run = answer["run"]
        info, data = run["info"], run.get("data", {})
        found = MlflowRun(
            run_id=info["run_id"],
            experiment_id=str(info["experiment_id"]),
            name=info.get("run_name"),
            status=STATUS_TO_OURS.get(info.get("status", ""), "finished"),
            start_ms=info.get("start_time"),
            end_ms=info.get("end_time"),
            params={p["key"]: p.get("value", "") for p in data.get("params", [])},
            tags={t["key"]: t.get("value", "") for t in data.get("tags", [])},
        )
        for key in sorted({m["key"] for m in data.get("metrics", [])}):
            found.histories[key] = await self.metric_history(run_id, key)
        return found

    async def metric_history(self, run_id: str, key: str) -> list[tuple[int, float, int]]:
        points: list[tuple[int, float, int]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"run_id": run_id, "metric_key": key, "max_results": HISTORY_PAGE}
            if token:
                params["page_token"] = token
            answer = await self._call("GET", f"{API}/metrics/get-history", params=params)
            points += [
                (int(m.get("step", 0)), float(m["value"]), int(m.get("timestamp", 0)))
                for m in answer.get("metrics", [])
            ]
            token = answer.get("next_page_token")
            if not token:
                return points

    # -- export --------------------------------------------------------------------------------

    async def experiment_id(self, name: str) -> str:
        """The experiment's id, created when it does not exist."""
        try:
            query = {"experiment_name": name}
            answer = await self._call("GET", f"{API}/experiments/get-by-name", params=query)
            return str(answer["experiment"]["experiment_id"])
        except OutboundError as exc:
            if exc.status != 404:
                raise
        created = await self._call("POST", f"{API}/experiments/create", payload={"name": name})
        return str(created["experiment_id"])

    async def create_run(self, experiment_id: str, *, name: str, start_ms: int, tags: dict[str, str]) -> str:
        answer = await self._call(
            "POST",
            f"{API}/runs/create",
            payload={
                "experiment_id": experiment_id,
                "run_name": name,
                "start_time": start_ms,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        return str(answer["run"]["info"]["run_id"])

    async def run_info(self, run_id: str) -> dict[str, Any]:
        answer = await self._call("GET", f"{API}/runs/get", params={"run_id": run_id})
        info: dict[str, Any] = answer["run"]["info"]
        return info

    async def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[dict[str, Any]] = (),
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        for chunk in _batches(list(metrics), list((params or {}).items()), list((tags or {}).items())):
            await self._call("POST", f"{API}/runs/log-batch", payload={"run_id": run_id, **chunk})

    async def upload_artifact(self, artifact_uri: str, path: str, content: bytes, content_type: str) -> None:
        """PUT a file into the run's artifacts through the server's artifact proxy."""
        prefix = "mlflow-artifacts:"
        if not artifact_uri.startswith(prefix):
            raise OutboundError(
                f"the MLflow server stores this run's artifacts at {artifact_uri.split(':')[0]}:..., which "
                "Yardstick cannot write to; start it with --serve-artifacts (MLflow 2's default)",
                host=self.base,
            )
        where = artifact_uri[len(prefix) :].lstrip("/")
        await request_json(
            self.client,
            "PUT",
            f"{self.base}{ARTIFACTS_API}/{quote(where)}/{quote(path)}",
            content=content,
            content_type=content_type,
            decode=False,
        )

    async def end_run(self, run_id: str, *, end_ms: int, status: str = "FINISHED") -> None:
        await self._call(
            "POST", f"{API}/runs/update", payload={"run_id": run_id, "status": status, "end_time": end_ms}
        )


def _batches(
    metrics: list[dict[str, Any]], params: list[tuple[str, str]], tags: list[tuple[str, str]]
) -> Iterator[dict[str, Any]]:
    """``log-batch`` bodies within MLflow's per-call limits."""
    while metrics or params or tags:
        take_params, params = params[:MAX_BATCH_PARAMS], params[MAX_BATCH_PARAMS:]
        take_tags, tags = tags[:MAX_BATCH_TAGS], tags[MAX_BATCH_TAGS:]
        room = MAX_BATCH_METRICS - len(take_params) - len(take_tags)
        take_metrics, metrics = metrics[:room], metrics[room:]
        yield {
            "metrics": take_metrics,
            "params": [{"key": k, "value": v[:MAX_PARAM_CHARS]} for k, v in take_params],
            "tags": [{"key": k, "value": v} for k, v in take_tags],
        }


def last_value_per_step(history: list[tuple[int, float, int]]) -> list[tuple[int, float, int]]:
    """One point per step (MLflow allows several: the latest by timestamp wins), finite values
    only, in step order."""
    latest: dict[int, tuple[int, float, int]] = {}
    for step, value, timestamp in history:
        if not math.isfinite(value):
            continue
        if step not in latest or timestamp >= latest[step][2]:
            latest[step] = (step, value, timestamp)
    return [latest[s] for s in sorted(latest)]
