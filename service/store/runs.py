"""Tracking runs in SQL: runs, their labels for filtering, metric points and param points.

Metric points are stored columnar: each logging call adds, per series (metric name and worker),
one row whose ``data`` packs the call's steps, values, times and staleness as four little-endian
arrays (:func:`pack` / :func:`unpack`). A 100k-point series reads back as a few rows and four
``numpy.frombuffer`` views, which is what keeps ``GET /v1/runs/{id}/metrics`` fast; ingest is one
INSERT per series per call.

A series goes forward: a call's points of one series come in increasing steps (the request
model checks that), and a point at or before the series' last stored step is accepted only as a
retry, i.e. when that step is stored with the same value. Anything else is refused before
anything is written: the whole call or nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from schemas.common import ModelRef
from schemas.runs import MetricLog, Run, RunCreate, RunUpdate
from service.errors import Conflict, FieldIssue, InvalidInput, NotFound
from service.store import paging as tokens
from service.store import tables as t

RUN_LEVEL = ""  # the ``worker`` of points logged for the run as a whole
NO_STALENESS = -1
_LABEL_VALUE_CHARS = 500


@dataclass(frozen=True)
class Series:
    """One metric series of a run, in step order."""

    name: str
    worker: str | None
    steps: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    seconds: npt.NDArray[np.float64]  # POSIX timestamps
    staleness: npt.NDArray[np.int64]  # NO_STALENESS where not logged

    def __len__(self) -> int:
        return len(self.steps)


def pack(
    steps: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    seconds: npt.NDArray[np.float64],
    staleness: npt.NDArray[np.int64],
) -> bytes:
    return b"".join(
        np.ascontiguousarray(a, dtype=d).tobytes()
        for a, d in ((steps, "<i8"), (values, "<f8"), (seconds, "<f8"), (staleness, "<i8"))
    )


def unpack(data: bytes, count: int) -> tuple[npt.NDArray[Any], ...]:
    return tuple(
        np.frombuffer(data, dtype=d, count=count, offset=8 * count * i)
        for i, d in enumerate(("<i8", "<f8", "<f8", "<i8"))
    )


def _seconds(timestamp: datetime | float | None, default: float) -> float:
    if timestamp is None:
        return default
    return timestamp if isinstance(timestamp, float) else timestamp.timestamp()


def flatten(params: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``{'optimizer': {'lr': 0.1}}`` -> ``('optimizer.lr', 0.1)``."""
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{name}.")
        else:
            yield name, value


def label_text(value: Any) -> str:
    """How a tag or param value is compared in filters: JSON-like text (``0.1``, ``true``, ``adam``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)[:_LABEL_VALUE_CHARS]


class RunStore:
    """The runs of one project."""

    def __init__(self, engine: Engine, project: str) -> None:
        self.engine = engine
        self.project = project

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- runs ----------------------------------------------------------------------------------

    def create(self, run_id: str, body: RunCreate, now: datetime) -> Run:
        values = {
            "id": run_id,
            "project": self.project,
            "model_name": body.model.name,
            "model_version": body.model.version,
            "name": body.name,
            "status": "running",
            "params": body.params,
            "tags": body.tags,
            "source_commit": body.source_commit,
            "dataset": body.dataset,
            "started_at": (body.started_at or now).astimezone(UTC),
            "ended_at": None,
            "created_at": now,
        }
        with self._tx() as conn:
            conn.execute(insert(t.runs).values(**values))
            self._write_labels(conn, run_id, body.tags, body.params)
        return self.get(run_id)

    def _write_labels(
        self, conn: Connection, run_id: str, tags: dict[str, str], params: dict[str, Any] | None
    ) -> None:
        rows = [{"run_id": run_id, "kind": "tag", "key": k, "value": label_text(v)} for k, v in tags.items()]
        if params is not None:
            rows += [
                {"run_id": run_id, "kind": "param", "key": k[:250], "value": label_text(v)}
                for k, v in flatten(params)
            ]
        if tags:
            conn.execute(
                delete(t.run_labels).where(
                    t.run_labels.c.run_id == run_id,
                    t.run_labels.c.kind == "tag",
                    t.run_labels.c.key.in_(list(tags)),
                )
            )
        if rows:
            conn.execute(insert(t.run_labels), rows)

    def _row(self, conn: Connection, run_id: str) -> Any:
        row = conn.execute(
            select(t.runs).where(t.runs.c.id == run_id, t.runs.c.project == self.project)
        ).first()
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return row

    def get(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            row = self._row(conn, run_id)
            names = conn.execute(
                select(t.run_points.c.name)
                .where(t.run_points.c.run_id == run_id)
                .group_by(t.run_points.c.name)
                .order_by(t.run_points.c.name)
            ).scalars()
            return _run(row, list(names), self._evaluations(conn, run_id))

    def _evaluations(self, conn: Connection, run_id: str) -> list[str]:
        """Evaluation jobs whose request names the run (``run_id``), oldest first."""
        query = (
            select(t.jobs.c.id)
            .where(t.jobs.c.project == self.project, t.jobs.c.request["run_id"].as_string() == run_id)
            .order_by(t.jobs.c.created_at, t.jobs.c.id)
        )
        return list(conn.execute(query).scalars())

    def update(self, run_id: str, body: RunUpdate, now: datetime) -> Run:
        with self._tx() as conn:
            row = self._row(conn, run_id)
            changes: dict[str, Any] = {}
            if body.status is not None:
                changes["status"] = body.status
                if body.status != "running" and body.ended_at is None and row.ended_at is None:
                    changes["ended_at"] = now
            if body.ended_at is not None:
                changes["ended_at"] = body.ended_at.astimezone(UTC)
            if body.tags:
                changes["tags"] = {**row.tags, **body.tags}
                self._write_labels(conn, run_id, body.tags, None)
            if changes:
                conn.execute(update(t.runs).where(t.runs.c.id == run_id).values(**changes))
        return self.get(run_id)

    def list_runs(
        self,
        *,
        model: str | None,
        tags: dict[str, str],
        params: dict[str, str],
        page_size: int,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        query = select(t.runs).where(t.runs.c.project == self.project)
        if model is not None:
            query = query.where(t.runs.c.model_name == model)
        for kind, filters in (("tag", tags), ("param", params)):
            for key, value in filters.items():
                query = query.where(
                    t.runs.c.id.in_(
                        select(t.run_labels.c.run_id).where(
                            t.run_labels.c.kind == kind,
                            t.run_labels.c.key == key,
                            t.run_labels.c.value == value,
                        )
                    )
                )
        scope = f"runs:{self.project}"
        if page_token:
            created, row_id = tokens.decode_token(page_token, scope=scope)
            query = query.where(
                or_(
                    t.runs.c.created_at < created,
                    and_(t.runs.c.created_at == created, t.runs.c.id < row_id),
                )
            )
        query = query.order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc()).limit(page_size + 1)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).all())
            runs = [_run(r, [], []) for r in rows[:page_size]]
        token = None
        if len(rows) > page_size:
            last = rows[page_size - 1]
            token = tokens.encode_token(last.created_at, last.id, scope=scope)
        return runs, token

    # -- metric and param points ---------------------------------------------------------------

    def log(self, run_id: str, body: MetricLog, now: datetime) -> tuple[int, int]:
        """Store the call's points: (stored, already stored with the same value)."""
        default_time = now.timestamp()
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, point in enumerate(body.points):
            groups[(point.name, point.worker or RUN_LEVEL)].append(i)
        with self._tx() as conn:
            # the write that takes the run's lock (a row lock; SQLite's write lock) before reading
            touched = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id, t.runs.c.project == self.project)
                .values(status=t.runs.c.status)
            )
            if touched.rowcount == 0:
                raise NotFound(f"run {run_id!r} does not exist")
            last_steps = {
                (name, worker): last
                for name, worker, last in conn.execute(
                    select(t.run_points.c.name, t.run_points.c.worker, func.max(t.run_points.c.last_step))
                    .where(t.run_points.c.run_id == run_id)
                    .group_by(t.run_points.c.name, t.run_points.c.worker)
                )
            }
            rows: list[dict[str, Any]] = []
            unchanged = 0
            for (name, worker), indices in groups.items():
                points = [body.points[i] for i in indices]
                last = last_steps.get((name, worker))
                retried = [p for p in points if last is not None and p.step <= last]
                if retried and last is not None:
                    unchanged += self._check_retry(conn, run_id, name, worker, retried, indices, last)
                fresh = points[len(retried) :]
                if not fresh:
                    continue
                steps = np.fromiter((p.step for p in fresh), np.int64, len(fresh))
                rows.append(
                    {
                        "run_id": run_id,
                        "name": name,
                        "worker": worker,
                        "first_step": int(steps[0]),
                        "last_step": int(steps[-1]),
                        "count": len(fresh),
                        "data": pack(
                            steps,
                            np.fromiter((p.value for p in fresh), np.float64, len(fresh)),
                            np.fromiter(
                                (_seconds(p.timestamp, default_time) for p in fresh),
                                np.float64,
                                len(fresh),
                            ),
                            np.fromiter(
                                (NO_STALENESS if p.staleness is None else p.staleness for p in fresh),
                                np.int64,
                                len(fresh),
                            ),
                        ),
                    }
                )
            params_stored, params_unchanged = self._log_params(conn, run_id, body)
            if rows:
                conn.execute(insert(t.run_points), rows)
        return sum(int(r["count"]) for r in rows) + params_stored, unchanged + params_unchanged

    def _check_retry(
        self,
        conn: Connection,
        run_id: str,
        name: str,
        worker: str,
        retried: list[Any],
        indices: list[int],
        last: int,
    ) -> int:
        """Points at or before the series' last step must be stored already, with the same value."""
        stored = self._read(conn, run_id, name, worker, retried[0].step, retried[-1].step)
        values = dict(zip(stored.steps.tolist(), stored.values.tolist(), strict=True))
        series = f"{name!r}" + ("" if worker == RUN_LEVEL else f" (worker {worker!r})")
        for point, index in zip(retried, indices, strict=False):
            if point.step not in values:
                raise InvalidInput(
                    f"step {point.step} of {series} comes before its last stored step {last}: a series "
                    "goes forward (a retried call may resend points already stored)",
                    [FieldIssue(f"points[{index}].step", f"log steps after {last}")],
                )
            if values[point.step] != point.value:
                raise Conflict(
                    f"step {point.step} of {series} is stored with the value {values[point.step]!r}, "
                    f"not {point.value!r}; points are not overwritten",
                    [FieldIssue(f"points[{index}].value", "log a new step instead")],
                )
        return len(retried)

    def _log_params(self, conn: Connection, run_id: str, body: MetricLog) -> tuple[int, int]:
        if not body.params:
            return 0, 0
        keys = [(p.name, p.step) for p in body.params]
        if len(set(keys)) != len(keys):
            raise InvalidInput("params: a (name, step) appears twice in one call", [FieldIssue("params", "")])
        existing = {
            (name, step): value
            for name, step, value in conn.execute(
                select(t.run_params.c.name, t.run_params.c.step, t.run_params.c.value).where(
                    t.run_params.c.run_id == run_id,
                    t.run_params.c.name.in_({p.name for p in body.params}),
                )
            )
        }
        fresh, unchanged = [], 0
        for i, point in enumerate(body.params):
            key = (point.name, point.step)
            if key in existing:
                if existing[key] != point.value:
                    raise Conflict(
                        f"param {point.name!r} at step {point.step} is stored as {existing[key]!r}, "
                        f"not {point.value!r}",
                        [FieldIssue(f"params[{i}].value", "log the change at a later step")],
                    )
                unchanged += 1
            else:
                fresh.append({"run_id": run_id, "name": point.name, "step": point.step, "value": point.value})
        if fresh:
            conn.execute(insert(t.run_params), fresh)
        return len(fresh), unchanged

    def _read(
        self,
        conn: Connection,
        run_id: str,
        name: str,
        worker: str,
        first: int | None = None,
        last: int | None = None,
    ) -> Series:
        query = select(t.run_points.c.count, t.run_points.c.data).where(
            t.run_points.c.run_id == run_id, t.run_points.c.name == name, t.run_points.c.worker == worker
        )
        if first is not None and last is not None:
            query = query.where(t.run_points.c.last_step >= first, t.run_points.c.first_step <= last)
        parts = [
            unpack(data, count) for count, data in conn.execute(query.order_by(t.run_points.c.first_step))
        ]
        columns: list[npt.NDArray[Any]] = [
            np.concatenate([p[i] for p in parts]) if parts else np.empty(0, d)
            for i, d in enumerate((np.int64, np.float64, np.float64, np.int64))
        ]
        return Series(name, None if worker == RUN_LEVEL else worker, *columns)

    def series(self, run_id: str, name: str, worker: str | None) -> Series:
        with self.engine.connect() as conn:
            self._row(conn, run_id)
            return self._read(conn, run_id, name, worker or RUN_LEVEL)

    def workers(self, run_id: str, name: str) -> list[str]:
        """The workers with points of ``name`` (``""``: the run as a whole)."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(t.run_points.c.worker)
                    .where(t.run_points.c.run_id == run_id, t.run_points.c.name == name)
                    .group_by(t.run_points.c.worker)
                    .order_by(t.run_points.c.worker)
                ).scalars()
            )

    def params(self, run_id: str) -> dict[str, list[tuple[int, Any]]]:
        """Param points by name, in step order."""
        with self.engine.connect() as conn:
            self._row(conn, run_id)
            history: dict[str, list[tuple[int, Any]]] = defaultdict(list)
            for name, step, value in conn.execute(
                select(t.run_params.c.name, t.run_params.c.step, t.run_params.c.value)
                .where(t.run_params.c.run_id == run_id)
                .order_by(t.run_params.c.name, t.run_params.c.step)
            ):
                history[name].append((step, value))
        return dict(history)

    def many(self, run_ids: Iterable[str]) -> dict[str, Run]:
        ids = list(dict.fromkeys(run_ids))
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.runs).where(t.runs.c.project == self.project, t.runs.c.id.in_(ids))
            ).all()
        found = {row.id: _run(row, [], []) for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(
                f"run {missing[0]!r} does not exist"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        return found


def _run(row: Any, metrics: list[str], evaluations: list[str]) -> Run:
    m = row._mapping
    return Run(
        id=m["id"],
        model=ModelRef(name=m["model_name"], version=m["model_version"]),
        name=m["name"],
        status=m["status"],
        params=m["params"],
        tags=m["tags"],
        source_commit=m["source_commit"],
        dataset=m["dataset"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        metrics=metrics,
        evaluations=evaluations,
    )
