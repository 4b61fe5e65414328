"""The baselines of one evaluation: build every baseline's predictions, join other batches by
sample_id, and hand the arrays to the pure baselines worker, in the job's threads
(:class:`BaselineRunner`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypedDict, TypeVar

import numpy as np
import pyarrow as pa

from schemas.baselines import BaselineResult, Heuristic, Pairing
from schemas.evaluations import EvaluationCreate
from schemas.metrics import MetricsReport
from schemas.results import Finding
from service.canonical import LABEL, SAMPLE_ID, Label, Task, join_on_sample_id
from service.errors import NotFound
from service.expressions import evaluate as evaluate_expression
from service.expressions import parse
from service.jobs.decoding import EvaluationData, batch_codes, labeled, predictions
from service.store import Store
from service.store.records import BatchRecord
from service.workers import baselines as bw
from service.workers.metrics import Labels, needs_scores
from service.workers.sorting import sort_floats

Progress = Callable[[float], None]
S = TypeVar("S")
T = TypeVar("T")


class CompareOptions(TypedDict):
    """The keyword arguments :func:`~service.workers.baselines.compare` takes from the setup."""

    task: Task
    metrics: list[str]
    primary_metric: str
    n_classes: int | None
    positive: int | None
    samples: int
    confidence: float
    seed: int
    interval_method: bw.IntervalMethod


@dataclass(frozen=True)
class LabeledRows:
    """The model batch's labeled rows: arrays for the workers, the raw table for rules, and ids.

    ``sample_id`` is None when no join needs it: every other batch holds the model's ids in
    the same order, as their files' id digests show (a million ids not read).
    """

    side: bw.Side
    table: pa.Table
    sample_id: pa.Array | None = None

    @property
    def n(self) -> int:
        return int(self.side.y_true.size)


def labeled_rows(table: pa.Table, data: EvaluationData) -> LabeledRows:
    """The labeled rows for the baselines (with their ids when the table has them)."""
    rows = labeled(table)
    side = bw.Side(y_true=data.y_true, y_pred=data.y_pred, scores=data.scores)
    ids = rows.column(SAMPLE_ID).combine_chunks() if SAMPLE_ID in rows.column_names else None
    return LabeledRows(side=side, table=rows, sample_id=ids)


@dataclass(frozen=True)
class ComparisonSetup:
    """How every baseline of one request is compared with the model: the batch, the metrics, the
    primary metric that decides "beats", the bootstrap of the tests."""

    batch: BatchRecord
    metrics: list[str]
    primary: str
    #: decides "beats" for a baseline without scores (a rule, a person) when ``primary`` needs them
    label_primary: str
    samples: int
    confidence: float
    seed: int
    interval_method: bw.IntervalMethod = "auto"
    labels: Labels = "present"

    @property
    def n_classes(self) -> int | None:
        return None if self.batch.task == "regression" else len(self.batch.classes or [])

    @property
    def positive(self) -> int | None:
        return self.batch.positive_code

    @property
    def class_names(self) -> list[str] | None:
        return None if self.batch.task == "regression" else [str(c) for c in self.batch.classes or []]

    def prepare(self, side: bw.Side, paired_with: bw.Side | None = None) -> bw.PreparedSide:
        """A baseline side with its own report (same code as the model's) and test statistics.

        A baseline without scores (a rule, a person) gets its score metrics as undefined.
        """
        return bw.prepare_side(
            side,
            task=self.batch.task,
            metrics=self.metrics,
            n_classes=self.n_classes,
            positive=self.positive,
            class_names=self.class_names,
            paired_with=None if self.batch.task == "regression" else paired_with,
            labels=self.labels,
        )

    def primary_for(self, side: bw.PreparedSide) -> str:
        """The metric that decides "beats" against this side: the primary metric, or the label
        primary when the primary needs scores that the side does not have."""
        if needs_scores(self.primary) and side.side.scores is None:
            return self.label_primary
        return self.primary

    def options(self, primary: str | None = None) -> CompareOptions:
        return {
            "task": self.batch.task,
            "metrics": self.metrics,
            "primary_metric": primary or self.primary,
            "n_classes": self.n_classes,
            "positive": self.positive,
            "samples": self.samples,
            "confidence": self.confidence,
            "seed": self.seed,
            "interval_method": self.interval_method,
        }


@dataclass(frozen=True)
class _Prepared:
    """A baseline side ready to compare: what could be built without the model's own statistics."""

    side: bw.PreparedSide
    pairing: Pairing
    details: dict[str, object]
    paired: bool = True
    #: the model's side on the shared rows when it is not all of the model's rows
    model_side: bw.PreparedSide | None = None


@dataclass(frozen=True)
class _Step:
    """One baseline: ``prepare`` (optional) needs only the batches, ``finish`` also the model."""

    finish: Callable[[_Prepared | None, bw.PreparedSide], list[BaselineResult]]
    #: starts building the baseline's side in the runner's threads
    prepare: Callable[[], Future[_Prepared]] | None = None


@dataclass(frozen=True)
class _Other:
    """A human or existing baseline batch named by the request."""

    batch_id: str
    kind: str
    name: str


@dataclass(frozen=True)
class _Loaded:
    """Another batch read and decoded: all of its side that does not need the model's rows."""

    record: BatchRecord
    table: pa.Table
    y_pred: np.ndarray
    scores: np.ndarray | None
    #: its file holds the model's (all labeled) ids in the same order, by digest: no join
    same_ids: bool
    #: binary scores sorted while the model's own batch is still being read
    sorted_scores: tuple[np.ndarray, np.ndarray] | None = None


class BaselineRunner:
    """The baselines of one evaluation, run in the job's threads; created before the model's
    batch is read.

    Creating it looks up the other batches (human, existing; a missing one raises NotFound)
    and checks their id digests, which decides whether the model's ids must be read at all.
    :meth:`start`, once the model's rows are read, loads the other batches and evaluates the
    rules in the runner's threads while the job decodes its labels; :meth:`run` compares every
    baseline with the model, whose side (its metrics and test statistics) is prepared in the
    same threads while the other sides are. numpy and Arrow release the GIL in their loops, so
    two cores take about half the time. With one thread everything runs in the calling thread,
    in order.

    No task in the pool ever waits for another: one that needs another's result is submitted
    (:meth:`after`) once that result exists, and only the calling thread waits. So the pool may
    run its queue in any order without a deadlock or a read of unfinished work
    (``tests/store/test_baseline_threads.py`` runs it last-in-first-out).

    Use as a context manager: leaving it stops the pool (queued work is dropped on error).
    """

    def __init__(self, store: Store, batch: BatchRecord, request: EvaluationCreate, *, threads: int) -> None:
        spec = request.baselines
        assert spec is not None
        self._store, self._batch, self._request = store, batch, request
        self._threads = max(1, threads)
        others = [_Other(spec.human.batch_id, "human", "human")] if spec.human is not None else []
        self._others = others + [_Other(e.batch_id, "existing", e.name) for e in spec.existing]
        records = {o.batch_id: store.batch(o.batch_id) for o in self._others}
        self._same_ids = {i: _same_ids_as_model(store, batch, r) for i, r in records.items()}
        # Two threads: the full-panel job takes 0.58-0.69x the wall time of one thread for
        # 0.93-1.08x the CPU (benchmarks/bench_tuning.py). BLAS is already single-threaded in
        # worker processes (service/tuning.py), so the pool's threads have the cores to themselves.
        self._pool: Executor = (
            ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="yardstick-baselines")
            if self._threads > 1
            else _Inline()
        )
        self._records = records
        self._loads: dict[str, Future[_Loaded]] = {}
        self._rules: dict[int, Future[np.ndarray]] = {}
        self._started = False

    def start(self, labeled_table: pa.Table) -> None:
        """Start reading and decoding the other batches, and evaluating the heuristics on the
        model's labeled rows (their raw columns), in the runner's threads: none of it needs the
        model's decoded labels, which the job decodes meanwhile."""
        spec = self._request.baselines
        assert spec is not None
        self._loads = {
            i: self._pool.submit(_load_other, self._store, self._batch, record, same_ids=self._same_ids[i])
            for i, record in self._records.items()
        }
        self._rules = {
            i: self._pool.submit(heuristic_predictions, h, labeled_table, self._batch)
            for i, h in enumerate(spec.heuristics)
        }
        self._started = True

    def submit(self, fn: Callable[..., T], /, *args: object) -> Future[T]:
        """Run ``fn(*args)`` in the runner's threads (at once, inline, with one thread)."""
        return self._pool.submit(fn, *args)

    def after(self, dependency: Future[S], fn: Callable[[S], T]) -> Future[T]:
        """Run ``fn(dependency.result())`` in the runner's threads once ``dependency`` is done.

        The task is queued only then, so no pool thread blocks on a task queued behind it. A
        failed or cancelled dependency, or a pool shut down meanwhile (the job failed), fails the
        returned future without running ``fn``.
        """
        outcome: Future[T] = Future()

        def copy(done: Future[T]) -> None:
            if done.cancelled():
                outcome.cancel()
            elif (error := done.exception()) is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(done.result())

        def submit(done: Future[S]) -> None:
            try:
                task = self._pool.submit(fn, done.result())
            except BaseException as error:  # the dependency failed or was cancelled; the pool stopped
                outcome.set_exception(error)
                return
            task.add_done_callback(copy)

        dependency.add_done_callback(submit)
        return outcome

    @property
    def needs_sample_ids(self) -> bool:
        """Whether a join needs the model's sample ids (some other batch is not the model's rows)."""
        return not all(self._same_ids.values())

    def __enter__(self) -> BaselineRunner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)

    def run(
        self,
        rows: LabeledRows,
        model: Future[bw.PreparedSide],
        *,
        metrics: list[str],
        primary: str,
        label_primary: str,
        progress: Progress,
    ) -> tuple[bw.PreparedSide, list[BaselineResult], list[Finding]]:
        """Every requested baseline against the model, prepared once (its scores sorted once).

        Call :meth:`start` first. ``model`` is the model's side for the ``metrics`` compared, being
        prepared in the runner's threads (:meth:`submit`, :meth:`after`). The comparisons, which
        need both sides, run in the runner's threads too; the results come back in request order.

        Returns
        -------
        tuple
            The prepared model, one result per baseline (two for a regression zero rule),
            and the ``worse_than_baseline`` findings.
        """
        spec, batch, request = self._request.baselines, self._batch, self._request
        assert spec is not None
        if not self._started:
            raise RuntimeError("BaselineRunner.start() must run before run().")
        boot = request.bootstrap
        setup = ComparisonSetup(
            batch=batch,
            metrics=metrics,
            primary=primary,
            label_primary=label_primary,
            samples=boot.samples if boot else 1000,
            confidence=boot.confidence if boot else 0.95,
            seed=boot.seed if boot else 0,
            interval_method=spec.interval_method,
            labels=request.labels,
        )
        steps: list[_Step] = []
        strategies: list[bw.Strategy] = []
        if spec.random_uniform:
            strategies.append("uniform")
        if spec.random_prior:
            strategies.append("prior")
        if batch.task != "regression" and strategies:
            # one step: the second strategy reuses the model's bootstrap replicates the first drew
            steps.append(_Step(lambda _, model: [_random(setup, model, rows, s) for s in strategies]))
        if spec.zero_rule:
            steps.append(_Step(lambda _, model: _zero_rule(setup, model, rows)))

        def heuristic_step(i: int, h: Heuristic) -> _Step:
            return _Step(
                lambda prepared, model: [_finish(setup, model, prepared, "heuristic", h.name)],
                lambda: self.after(self._rules[i], lambda pred: _heuristic(setup, rows, h, pred)),
            )

        def other_step(o: _Other) -> _Step:
            return _Step(
                lambda prepared, model: [_finish(setup, model, prepared, o.kind, o.name)],
                lambda: self.after(
                    self._loads[o.batch_id], lambda loaded: _other_batch(self._store, setup, rows, loaded)
                ),
            )

        steps += [heuristic_step(i, h) for i, h in enumerate(spec.heuristics)]
        steps += [other_step(o) for o in self._others]
        futures: dict[int, Future[_Prepared]] = {}
        # last to first: the other batches (sort, gradients: the costly sides) start first
        for i in reversed(range(len(steps))):
            prepare = steps[i].prepare
            if prepare is not None:
                futures[i] = prepare()
        prepared_model = model.result()

        def finish(step: _Step, prepared: _Prepared | None) -> list[BaselineResult]:
            return step.finish(prepared, prepared_model)

        # The comparisons run in the pool too, so this thread does not compete for the cores;
        # each is queued once its side is prepared.
        finished = [
            self.after(futures[i], functools.partial(finish, step))
            if i in futures
            else self._pool.submit(finish, step, None)
            for i, step in enumerate(steps)
        ]
        results: list[BaselineResult] = []
        for i, done in enumerate(finished):
            results += done.result()
            progress((i + 1) / len(steps))
        return prepared_model, results, [f for r in results if (f := _finding(r)) is not None]


class _Inline(Executor):
    """An executor that runs each task at once in the calling thread (``job_threads = 1``)."""

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)
        return future


def _entry(
    kind: str,
    name: str,
    report: MetricsReport,
    comparison: bw.Comparison,
    pairing: Pairing,
    setup: ComparisonSetup,
    details: dict[str, object] | None = None,
    primary: str | None = None,
) -> BaselineResult:
    primary = primary or setup.primary
    details = dict(details or {})
    if primary != setup.primary:
        details["compared_on"] = (
            f"{primary}: the primary metric {setup.primary} needs scores, which this baseline does not give"
        )
    return BaselineResult(
        kind=kind,
        name=name,
        metrics=report.metrics,
        undefined=report.undefined,
        lift={m: c.lift for m, c in comparison.significance.items()},
        significance=comparison.significance,
        pairing=pairing,
        beats=comparison.beats,
        primary_metric=primary,
        details=details,
    )


def _paired(rows: LabeledRows) -> Pairing:
    n = rows.n
    return Pairing(mode="paired", shared_rows=n, model_only_rows=0, baseline_only_rows=0)


def _random(
    setup: ComparisonSetup, model: bw.PreparedSide, rows: LabeledRows, strategy: bw.Strategy
) -> BaselineResult:
    expected = bw.expected_random_metrics(
        rows.side.y_true,
        n_classes=setup.n_classes or 0,
        positive=setup.positive,
        strategy=strategy,
        metrics=setup.metrics,
        class_names=setup.class_names,
        support=None if model.confusion is None else model.confusion.sum(axis=1),
        labels=setup.labels,
    )
    comparison = bw.compare_to_expected(model, expected, **setup.options())
    pairing = Pairing(
        mode="expected",
        note="closed-form expected metrics of a random predictor on the model's labeled rows",
    )
    return _entry(f"random_{strategy}", f"random_{strategy}", expected, comparison, pairing, setup)


def _zero_rule(setup: ComparisonSetup, model: bw.PreparedSide, rows: LabeledRows) -> list[BaselineResult]:
    if setup.batch.task == "regression":
        sides = [
            ("zero_rule", bw.constant_regression_predictions(rows.side.y_true, statistic="mean"), "mean"),
            (
                "zero_rule (median)",
                bw.constant_regression_predictions(rows.side.y_true, statistic="median"),
                "median",
            ),
        ]
        results = []
        for name, side, predicts in sides:
            prepared = setup.prepare(side)
            comparison = bw.compare(model, prepared, paired=True, **setup.options())
            report = prepared.report
            assert report is not None  # setup.prepare reports every side
            results.append(
                _entry("zero_rule", name, report, comparison, _paired(rows), setup, {"predicts": predicts})
            )
        return results
    # prepared from the model's confusion counts (same rows): no n-row array
    zero_rule = (
        bw.prepare_zero_rule(model)
        if model.n
        else bw.zero_rule_predictions(
            rows.side.y_true, n_classes=setup.n_classes or 0, positive=setup.positive
        )
    )
    comparison = bw.compare(model, zero_rule, paired=True, **setup.options())
    # Closed form, equal to the metrics of the constant predictions (tested), in microseconds.
    report = bw.zero_rule_metrics(
        rows.side.y_true,
        n_classes=setup.n_classes or 0,
        positive=setup.positive,
        metrics=setup.metrics,
        class_names=setup.class_names,
        support=None if model.confusion is None else model.confusion.sum(axis=1),
        labels=setup.labels,
    )
    details: dict[str, object] = {"predicts": "most frequent class"}
    return [_entry("zero_rule", "zero_rule", report, comparison, _paired(rows), setup, details)]


def heuristic_predictions(heuristic: Heuristic, table: pa.Table, batch: BatchRecord) -> np.ndarray:
    """Rule predictions, first matching rule wins; as class codes (or values for regression)."""
    if batch.task == "regression":
        values = [float(r.then) for r in heuristic.rules]
        otherwise = float(heuristic.otherwise)
    else:
        # a Sequence looks up any value: a float rule value finds its integral class (1.0 -> 1)
        classes: Sequence[Label] = batch.classes or []
        values = [classes.index(r.then) for r in heuristic.rules]
        otherwise = classes.index(heuristic.otherwise)
    dtype = np.float64 if batch.task == "regression" else np.intp
    pred: np.ndarray = np.full(table.num_rows, otherwise, dtype=dtype)
    # last rule first, each overwriting where it holds: the first matching rule wins
    for rule, value in reversed(list(zip(heuristic.rules, values, strict=True))):
        pred = np.where(evaluate_expression(parse(rule.when), table), np.asarray(value, dtype=dtype), pred)
    return pred


def _heuristic(
    setup: ComparisonSetup, rows: LabeledRows, heuristic: Heuristic, pred: np.ndarray
) -> _Prepared:
    """A rule list's side, from its predictions (:func:`heuristic_predictions`)."""
    side = setup.prepare(bw.Side(y_true=rows.side.y_true, y_pred=pred), paired_with=rows.side)
    details: dict[str, object] = {
        "rules": [r.model_dump() for r in heuristic.rules],
        "otherwise": heuristic.otherwise,
    }
    return _Prepared(side, _paired(rows), details)


def _finish(
    setup: ComparisonSetup, model: bw.PreparedSide, prepared: _Prepared | None, kind: str, name: str
) -> BaselineResult:
    """Compare a prepared baseline side with the model (or the model's side on the shared rows)."""
    assert prepared is not None
    primary = setup.primary_for(prepared.side)
    comparison = bw.compare(
        prepared.model_side or model,
        prepared.side,
        paired=prepared.paired,
        **setup.options(primary),
    )
    report = prepared.side.report
    assert report is not None  # setup.prepare reports every side
    return _entry(kind, name, report, comparison, prepared.pairing, setup, prepared.details, primary)


def _load_other(store: Store, batch: BatchRecord, other: BatchRecord, *, same_ids: bool) -> _Loaded:
    """Read another batch's predictions and scores in the model batch's class order (no labels:
    paired rows take their ground truth from the model's batch; ids only when a join needs them)."""
    stored = [c.name for c in other.columns if c.role != "feature"]
    wanted = [c for c in stored if c != LABEL and not (same_ids and c == SAMPLE_ID)]
    table = store.files.read(other.data_path, columns=wanted)
    y_pred, scores = predictions(table, batch)
    # sorting needs no labels: done now, so preparing the side later does not wait for it
    presorted = sort_floats(scores) if same_ids and scores is not None and scores.ndim == 1 else None
    return _Loaded(other, table, y_pred, scores, same_ids, presorted)


def _other_batch(store: Store, setup: ComparisonSetup, rows: LabeledRows, loaded: _Loaded) -> _Prepared:
    """Another batch's side, joined to the model's labeled rows by sample_id when they share ids."""
    other, table = loaded.record, loaded.table
    details: dict[str, object] = {
        "batch_id": other.id,
        "model": {"name": other.model_name, "version": other.model_version},
    }
    n_other = table.num_rows
    if loaded.same_ids and n_other == rows.n:
        # Same ids in the same order (equal digests of the whole files' ids, and every model
        # row labeled): no need to read a million ids, let alone compare them.
        return _all_rows_shared(setup, rows, loaded, details)
    if SAMPLE_ID in table.column_names:
        other_ids = table.column(SAMPLE_ID)
    else:  # the digests matched when the job started, but the labeled rows have changed since
        other_ids = store.files.read(other.data_path, columns=[SAMPLE_ID]).column(SAMPLE_ID)
    model_ids = _model_ids(store, setup.batch, rows)
    if n_other == len(model_ids) and other_ids.type == model_ids.type and other_ids.equals(model_ids):
        # The common case (same rows, same order): no hash join over a million strings, and
        # no gather or copy of the model's rows (chunk layouts may differ; equals compares values).
        return _all_rows_shared(setup, rows, loaded, details)
    join = join_on_sample_id(model_ids, other_ids)  # model row -> other row
    shared = join.matched.to_numpy(zero_copy_only=False)
    take = join.right_rows.to_numpy()
    n_shared = join.shared
    if n_shared > 0:
        everything = n_shared == shared.size
        y_pred, scores = loaded.y_pred, loaded.scores
        # The model side, already prepared (sorted once) when every labeled row is shared.
        model_side = (
            None
            if everything
            else setup.prepare(
                bw.Side(
                    y_true=rows.side.y_true[shared],
                    y_pred=rows.side.y_pred[shared],
                    scores=None if rows.side.scores is None else rows.side.scores[shared],
                )
            )
        )
        other_side = setup.prepare(
            bw.Side(
                y_true=rows.side.y_true if everything else rows.side.y_true[shared],
                y_pred=y_pred[take],
                scores=None if scores is None else scores[take],
            ),
            paired_with=rows.side if everything else None,
        )
        pairing = Pairing(
            mode="paired",
            shared_rows=n_shared,
            model_only_rows=int(shared.size - n_shared),
            # Ids are unique on both sides, so every other-batch row not matched is baseline-only.
            baseline_only_rows=n_other - n_shared,
            note=None
            if everything
            else f"compared on the {n_shared} labeled rows both batches share; "
            "ground truth from the model's batch",
        )
        return _Prepared(other_side, pairing, details, model_side=model_side)
    if LABEL in other.column_names():
        table = table.append_column(LABEL, store.files.read(other.data_path, columns=[LABEL]).column(LABEL))
    codes = batch_codes(table, setup.batch)
    has_label = codes.labeled
    unpaired_side = setup.prepare(
        bw.Side(
            y_true=codes.y_true[has_label].astype(rows.side.y_true.dtype),
            y_pred=codes.y_pred[has_label],
            scores=None if codes.scores is None else codes.scores[has_label],
        )
    )
    pairing = Pairing(
        mode="unpaired",
        shared_rows=0,
        model_only_rows=int(shared.size),
        baseline_only_rows=n_other,
        note="no sample ids in common: each side is evaluated on its own labeled rows and compared unpaired, "
        "so differences may come from the data as much as from the models",
    )
    return _Prepared(unpaired_side, pairing, details, paired=False)


def _model_ids(store: Store, batch: BatchRecord, rows: LabeledRows) -> pa.ChunkedArray:
    """The model's labeled rows' ids: as read with the batch, or read now (rare: see _other_batch)."""
    if rows.sample_id is not None:
        ids = rows.sample_id
    else:
        ids = labeled(store.files.read(batch.data_path, columns=[SAMPLE_ID, LABEL])).column(SAMPLE_ID)
    return pa.chunked_array([ids]) if isinstance(ids, pa.Array) else ids


def _all_rows_shared(
    setup: ComparisonSetup, rows: LabeledRows, loaded: _Loaded, details: dict[str, object]
) -> _Prepared:
    """The other batch's rows are the model's labeled rows, in order: paired on all of them."""
    side = setup.prepare(
        bw.Side(rows.side.y_true, loaded.y_pred, loaded.scores, sorted_scores=loaded.sorted_scores),
        paired_with=rows.side,
    )
    return _Prepared(side, _paired(rows), details)


def _same_ids_as_model(store: Store, batch: BatchRecord, other: BatchRecord) -> bool:
    """Whether ``other``'s file holds exactly the model's ids, in order, every model row labeled,
    by the digests written with both files (False when either lacks one: ids are then joined)."""
    if batch.labeled_rows != batch.rows:
        return False
    try:
        n_model, model_digest = store.files.footer(batch.data_path)
        n_other, other_digest = store.files.footer(other.data_path)
    except (OSError, NotFound):
        return False
    return model_digest is not None and model_digest == other_digest and n_model == n_other == batch.rows


def _finding(result: BaselineResult) -> Finding | None:
    if result.beats is not False:
        return None
    comparison = result.significance[result.primary_metric]
    worse = comparison.verdict == "worse"
    message = (
        f"The model is {'worse than' if worse else 'not significantly better than'} "
        f"the {result.name} baseline "
        f"on {result.primary_metric}: {comparison.model:.4g} vs {comparison.baseline:.4g}."
        if comparison.model is not None and comparison.baseline is not None
        else f"The model does not beat the {result.name} baseline on {result.primary_metric}."
    )
    gain = comparison.normalized_gain
    return Finding(
        kind="worse_than_baseline",
        severity="critical" if worse else "warning",
        # the whole batch times the relative shortfall: -(model - baseline) / (perfect - baseline)
        impact=max(0.0, -gain) if gain is not None else 0.0,
        message=message,
        details={
            "baseline": result.name,
            "kind": result.kind,
            "metric": result.primary_metric,
            "model": comparison.model,
            "baseline_value": comparison.baseline,
            "p_value": comparison.p_value,
            "verdict": comparison.verdict,
        },
    )
