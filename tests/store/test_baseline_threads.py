"""The baselines' thread pool is safe in any order: the same result when the pool runs its queue
last-in-first-out or at random, and no deadlock.

A pool thread that waited for a task queued behind it would deadlock as soon as the pool stopped
running tasks first-in-first-out (two threads, both blocked on queued work). The runner queues a
task only once what it needs exists (``BaselineRunner.after``); these executors would catch a
return to waiting inside the pool.
"""

from __future__ import annotations

import io
import random
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.evaluations import EvaluationCreate
from service.ingest import ingest_body
from service.jobs import baselines as baselines_job
from service.jobs.evaluate import run_evaluation
from service.jobs.submit import submit_evaluation
from service.settings import Settings
from service.store import Store


class ReorderingExecutor(Executor):
    """A pool of ``max_workers`` threads that picks the newest queued task first (``lifo``) or a
    random one (seeded): any order a correct design must survive."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "", *, order: str, seed: int = 0) -> None:
        self._queue: list[tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._order, self._random = order, random.Random(seed)
        self._threads = [
            threading.Thread(target=self._work, name=f"{thread_name_prefix}-{i}", daemon=True)
            for i in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append((future, fn, args, kwargs))
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                pick = (
                    len(self._queue) - 1
                    if self._order == "lifo"
                    else self._random.randrange(len(self._queue))
                )
                future, fn, args, kwargs = self._queue.pop(pick)
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._ready:
            self._closed = True
            if cancel_futures:
                for future, *_ in self._queue:
                    future.cancel()
                self._queue.clear()
            self._ready.notify_all()
        if wait:
            for thread in self._threads:
                thread.join()


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def every_baseline(settings: Settings) -> tuple[Store, EvaluationCreate]:
    """A binary batch with every kind of baseline: random, zero rule, a rule list, a person on a
    shuffled subset of its rows (a join), a champion on the same rows (no join)."""
    store = Store.open(settings)
    rng = np.random.default_rng(11)
    n = 600
    ids = pa.array([f"s{i}" for i in range(n)])
    label = rng.integers(0, 2, n)
    amount = rng.gamma(2.0, 300.0, n)
    model = pa.table(
        {
            "sample_id": ids,
            "label": label,
            "score": np.clip(0.4 * label + 0.6 * rng.random(n), 0, 1),
            "amount": amount,
        }
    )
    champion = pa.table({"sample_id": ids, "score": rng.random(n)})
    subset = rng.permutation(n)[: n // 2]
    human = pa.table(
        {"sample_id": ids.take(subset), "prediction": np.where(rng.random(n) < 0.8, label, 1 - label)[subset]}
    )
    spec = {"model": "m", "version": "1", "task": "binary", "positive_class": "1"}
    model_id, champion_id, human_id = (
        store.save_batch(ingest_body(_parquet(t), "application/vnd.apache.parquet", spec)).id
        for t in (model, champion, human)
    )
    request = EvaluationCreate.model_validate(
        {
            "batch_id": model_id,
            "metrics": ["accuracy", "f1", "roc_auc"],
            "bootstrap": {"samples": 200, "seed": 1},
            "baselines": {
                "random_uniform": True,
                "random_prior": True,
                "zero_rule": True,
                "heuristics": [
                    {"name": "big", "rules": [{"when": "amount > 900", "then": 1}], "otherwise": 0},
                    {"name": "small", "rules": [{"when": "amount < 100", "then": 1}], "otherwise": 0},
                ],
                "human": {"batch_id": human_id},
                "existing": [{"name": "champion", "batch_id": champion_id}],
            },
        }
    )
    return store, request


def _baselines(store: Store, settings: Settings, request: EvaluationCreate) -> list[dict[str, object]]:
    job = submit_evaluation(store, settings, request)
    outcome: list[list[dict[str, object]]] = []

    def evaluate() -> None:
        result = run_evaluation(store, job, progress=lambda _f: None, settings=settings)
        outcome.append([entry.model_dump() for entry in result.baselines])

    thread = threading.Thread(target=evaluate, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the baselines deadlocked: a pool thread waits for a task queued behind it"
    assert outcome, "the evaluation failed (see the captured log)"
    return outcome[0]


@pytest.mark.parametrize(("order", "seed"), [("lifo", 0), ("random", 1), ("random", 2)])
def test_the_baselines_do_not_depend_on_the_order_the_pool_runs_them(
    every_baseline: tuple[Store, EvaluationCreate],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    order: str,
    seed: int,
) -> None:
    store, request = every_baseline
    inline = _baselines(store, settings.model_copy(update={"job_threads": 1}), request)
    assert [entry["name"] for entry in inline] == [
        "random_uniform",
        "random_prior",
        "zero_rule",
        "big",
        "small",
        "human",
        "champion",
    ]
    made: list[ReorderingExecutor] = []

    def reordering(max_workers: int, thread_name_prefix: str = "") -> ReorderingExecutor:
        made.append(ReorderingExecutor(max_workers, thread_name_prefix, order=order, seed=seed))
        return made[-1]

    monkeypatch.setattr(baselines_job, "ThreadPoolExecutor", reordering)
    assert _baselines(store, settings.model_copy(update={"job_threads": 2}), request) == inline
    assert made, "the runner no longer builds its pool from ThreadPoolExecutor: patch what it uses"
    store.close()
