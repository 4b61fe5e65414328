"""Accepting an evaluation: everything that can be checked before queueing is checked here,
so a job that gets its 202 fails later only for reasons the request could not show."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

import pyarrow as pa

from schemas.evaluations import EvaluationCreate
from schemas.robustness import Directional, Invariance, Perturbation, RobustnessRequest
from service.canonical import SCORE, SCORE_PREFIX, Label
from service.errors import FieldIssue, InvalidInput, NotFound
from service.expressions import ExpressionError, check_columns, parse
from service.integrations.outbound import OutboundBlocked, OutboundPolicy
from service.jobs.gates import gate_issues
from service.settings import Settings
from service.store import JobRecord, Store, new_id
from service.store.records import BatchRecord
from service.store.sql import utcnow
from service.workers import metrics as metrics_worker
from service.workers import robustness as robustness_worker


def _has_scores(batch: BatchRecord) -> bool:
    names = set(batch.column_names())
    return SCORE in names or any(n.startswith(SCORE_PREFIX) for n in names)


def validate_request(request: EvaluationCreate, batch: BatchRecord) -> None:
    issues: list[FieldIssue] = []
    has_scores = _has_scores(batch)
    if request.metrics is not None:
        try:
            metrics_worker.validate_metric_names(batch.task, request.metrics, has_scores=has_scores)
        except ValueError as exc:
            issues.append(FieldIssue("metrics", str(exc)))
    if request.threshold is not None and (batch.task != "binary" or not has_scores):
        issues.append(
            FieldIssue(
                "threshold",
                "threshold derives binary predictions from scores: "
                + (
                    "this batch has no score column"
                    if batch.task == "binary"
                    else f"this batch is {batch.task}"
                ),
            )
        )
    computed = set(request.metrics or metrics_worker.default_metrics(batch.task, has_scores=has_scores))
    issues += gate_issues(request, batch.task, computed)
    if issues:
        raise InvalidInput("; ".join(f"{i.field}: {i.message}" for i in issues), issues)


def validate_baselines(store: Store, request: EvaluationCreate, batch: BatchRecord) -> None:
    """Rules must parse and name real columns; baseline batches must exist and fit the task."""
    baselines = request.baselines
    if baselines is None:
        return
    issues: list[FieldIssue] = []
    if batch.task == "regression":
        for flag in ("random_uniform", "random_prior"):
            if getattr(baselines, flag):
                issues.append(
                    FieldIssue(
                        f"baselines.{flag}",
                        "random baselines are for classification; for regression use zero_rule "
                        "(it reports both the mean and the median predictor)",
                    )
                )
    schema = pa.schema([pa.field(c.name, _arrow_type(c.type)) for c in batch.columns])
    for i, heuristic in enumerate(baselines.heuristics):
        where = f"baselines.heuristics[{i}]"
        for j, rule in enumerate(heuristic.rules):
            try:
                check_columns(parse(rule.when), schema)
            except ExpressionError as exc:
                issues.append(FieldIssue(f"{where}.rules[{j}].when", str(exc)))
            problem = _prediction_problem(rule.then, batch)
            if problem:
                issues.append(FieldIssue(f"{where}.rules[{j}].then", problem))
        problem = _prediction_problem(heuristic.otherwise, batch)
        if problem:
            issues.append(FieldIssue(f"{where}.otherwise", problem))
    others = [("baselines.human.batch_id", baselines.human.batch_id)] if baselines.human else []
    others += [(f"baselines.existing[{i}].batch_id", e.batch_id) for i, e in enumerate(baselines.existing)]
    for field, other_id in others:
        try:
            other = store.meta.get_batch(other_id)
        except NotFound:
            issues.append(FieldIssue(field, f"batch {other_id!r} does not exist"))
            continue
        if other.task != batch.task:
            issues.append(
                FieldIssue(field, f"batch {other_id!r} is {other.task}; the model's batch is {batch.task}")
            )
        elif batch.task != "regression" and not set(_keys(other.classes)) <= set(_keys(batch.classes)):
            issues.append(
                FieldIssue(
                    field, f"batch {other_id!r} has classes {other.classes}, not within {batch.classes}"
                )
            )
    if issues:
        raise InvalidInput("; ".join(f"{i.field}: {i.message}" for i in issues), issues)


def validate_probability_sections(request: EvaluationCreate, batch: BatchRecord) -> None:
    """Calibration needs probabilities; confidence needs them too, or regression intervals."""
    issues: list[FieldIssue] = []
    names = set(batch.column_names())
    if request.calibration is not None:
        if batch.task == "regression":
            issues.append(FieldIssue("calibration", "calibration is for classification batches; remove it"))
        elif not _has_scores(batch):
            issues.append(
                FieldIssue(
                    "calibration", "the batch has no predicted probabilities (`score` / `score__<class>`)"
                )
            )
        elif request.calibration.recalibrate and batch.labeled_rows < request.calibration.folds:
            issues.append(
                FieldIssue(
                    "calibration.folds",
                    f"cross-fitted recalibration needs at least {request.calibration.folds} labeled rows; "
                    f"the batch has {batch.labeled_rows}",
                )
            )
    if request.confidence is not None:
        if batch.task == "regression":
            if not {"lower", "upper"} <= names:
                issues.append(
                    FieldIssue(
                        "confidence",
                        "a regression batch needs `lower` and `upper` prediction-interval columns",
                    )
                )
        elif not _has_scores(batch):
            issues.append(
                FieldIssue(
                    "confidence", "the batch has no predicted probabilities (`score` / `score__<class>`)"
                )
            )
    if issues:
        raise InvalidInput("; ".join(f"{i.field}: {i.message}" for i in issues), issues)


def validate_robustness(store: Store, request: EvaluationCreate, batch: BatchRecord) -> None:
    """Columns must be features of the batch; pair batches must exist and fit the task."""
    spec = request.robustness
    if spec is None:
        return
    issues: list[FieldIssue] = []
    features = {c.name: c.type for c in batch.columns if c.role == "feature"}
    if spec.endpoint is not None and not features:
        issues.append(
            FieldIssue("robustness.endpoint", "the batch has no feature columns to send to a model")
        )
    if spec.endpoint is not None and not spec.endpoint.url.lower().startswith(("http://", "https://")):
        issues.append(
            FieldIssue("robustness.endpoint.url", "only http:// and https:// endpoints can be called")
        )
    tests: list[tuple[str, Sequence[Perturbation | Invariance | Directional]]] = [
        ("perturbation", spec.perturbation),
        ("invariance", spec.invariance),
        ("directional", spec.directional),
    ]
    for section, items in tests:
        for i, item in enumerate(items):
            if item.column not in features:
                issues.append(
                    FieldIssue(
                        f"robustness.{section}[{i}].column",
                        f"{item.column!r} is not a feature column of the batch; features: {sorted(features)}",
                    )
                )
    if batch.task == "multiclass":
        directional = [("directional", i) for i in range(len(spec.directional))]
        directional += [("pairs", i) for i, p in enumerate(spec.pairs) if p.expect != "same"]
        for section, i in directional:
            issues.append(
                FieldIssue(
                    f"robustness.{section}[{i}]",
                    "a multiclass model's answer has no direction: use invariance or `expect: same`",
                )
            )
    for i, pair in enumerate(spec.pairs):
        for key in ("original_batch_id", "perturbed_batch_id"):
            other_id = getattr(pair, key)
            try:
                other = store.meta.get_batch(other_id)
            except NotFound:
                issues.append(
                    FieldIssue(f"robustness.pairs[{i}].{key}", f"batch {other_id!r} does not exist")
                )
                continue
            if other.task != batch.task:
                issues.append(
                    FieldIssue(
                        f"robustness.pairs[{i}].{key}",
                        f"batch {other_id!r} is {other.task}, not {batch.task}",
                    )
                )
    issues += _change_refusals(spec, batch)
    if issues:
        raise InvalidInput("; ".join(f"{i.field}: {i.message}" for i in issues), issues)


def _change_refusals(spec: RobustnessRequest, batch: BatchRecord) -> list[FieldIssue]:
    """What the robustness worker would refuse about the changes themselves (a swap or `set` value
    the column cannot hold, equal swap values, arithmetic on a non-numeric column, noise of the
    wrong kind): the worker's own functions applied to no rows of the batch's feature types."""
    empty: dict[str, pa.Array] = {}
    for column in batch.columns:
        kind = _arrow_type(column.type)
        if column.role == "feature" and kind != pa.null():
            with contextlib.suppress(pa.ArrowException, ValueError, TypeError):
                empty[column.name] = pa.array([], kind)
    table = pa.table(empty)
    issues: list[FieldIssue] = []
    changes: list[tuple[str, Invariance | Directional]] = [
        *((f"robustness.invariance[{i}]", item) for i, item in enumerate(spec.invariance)),
        *((f"robustness.directional[{i}]", item) for i, item in enumerate(spec.directional)),
    ]
    for field, item in changes:
        if item.column not in empty:
            continue  # not a feature (already an issue) or a type only the worker can judge
        try:
            if isinstance(item, Invariance):
                robustness_worker.invariance_copy(table, item)
            else:
                robustness_worker.directional_copy(table, item)
        except (ValueError, OverflowError) as exc:
            issues.append(FieldIssue(field, str(exc) or f"the change does not fit column {item.column!r}"))
    for i, noise in enumerate(spec.perturbation):
        if noise.column not in empty:
            continue
        kind = empty[noise.column].type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
        needs = {
            "gaussian": (numeric, "a numeric column"),
            "typo": (pa.types.is_string(kind) or pa.types.is_large_string(kind), "a string column"),
            "swap": (not pa.types.is_nested(kind), "a flat column"),
        }
        fits, what = needs[noise.noise]
        if not fits:
            issues.append(
                FieldIssue(
                    f"robustness.perturbation[{i}].noise",
                    f"{noise.noise} noise needs {what}; {noise.column!r} is of type {kind}",
                )
            )
    return issues


def validate_slices(request: EvaluationCreate, batch: BatchRecord) -> None:
    spec = request.slices
    if spec is None:
        return
    issues: list[FieldIssue] = []
    features = set(batch.column_names("feature"))

    def check(field: str, name: str) -> None:
        if name not in features:
            issues.append(
                FieldIssue(
                    field, f"{name!r} is not a feature column of the batch; features: {sorted(features)}"
                )
            )

    for i, name in enumerate(spec.columns):
        check(f"slices.columns[{i}]", name)
    for i, cross in enumerate(spec.crosses):
        if len(cross) < 2 or len(set(cross)) != len(cross):
            issues.append(FieldIssue(f"slices.crosses[{i}]", "a cross names two or more different columns"))
        for j, name in enumerate(cross):
            check(f"slices.crosses[{i}][{j}]", name)
    schema = pa.schema([pa.field(c.name, _arrow_type(c.type)) for c in batch.columns])
    for i, critical in enumerate(spec.critical):
        try:
            check_columns(parse(critical.where), schema)
        except ExpressionError as exc:
            issues.append(FieldIssue(f"slices.critical[{i}].where", str(exc)))
    if spec.finder is not None:
        for i, name in enumerate(spec.finder.columns or []):
            check(f"slices.finder.columns[{i}]", name)
        if spec.finder.columns is None and not features:
            issues.append(FieldIssue("slices.finder", "the batch has no feature columns to search"))
    if issues:
        raise InvalidInput("; ".join(f"{i.field}: {i.message}" for i in issues), issues)


def _keys(classes: list[Label] | None) -> list[str]:
    return [repr(c) for c in classes or []]


def _prediction_problem(value: object, batch: BatchRecord) -> str | None:
    if batch.task == "regression":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"{value!r} is not a number; regression rules predict numbers"
    if any(type(value) is type(c) and value == c for c in batch.classes or []):
        return None
    return f"{value!r} is not one of the batch's classes {batch.classes}"


def _arrow_type(name: str) -> pa.DataType:
    """The Arrow type of a stored column from its recorded name (for expression type checks)."""
    dictionary = re.match(r"dictionary<values=(\w+)", name)
    if dictionary:
        name = dictionary.group(1)  # rules compare dictionary columns by their values
    try:
        return pa.type_for_alias(name)
    except ValueError:
        # Nested or parameterized types: comparisons on them are refused as non-scalar anyway.
        return pa.null()


def validate_outbound_urls(request: EvaluationCreate, settings: Settings) -> None:
    """The callback and the model endpoint must be URLs the outbound policy could call (address
    checks repeat at connect time): a refused one is a 422 now, not a failed section later."""
    policy = OutboundPolicy.from_settings(settings.outbound_allow)
    urls = [("callback_url", request.callback_url)]
    if request.robustness is not None and request.robustness.endpoint is not None:
        urls.append(("robustness.endpoint.url", request.robustness.endpoint.url))
    if request.mlflow is not None:
        urls.append(("mlflow.tracking_uri", request.mlflow.tracking_uri))
    issues = []
    for field, url in urls:
        if url is None:
            continue
        try:
            policy.check_url(url)
        except (OutboundBlocked, ValueError) as exc:
            issues.append(FieldIssue(field, str(exc)))
    if issues:
        raise InvalidInput(issues[0].message, issues)


def validate_run(store: Store, request: EvaluationCreate) -> None:
    """The run an evaluation names exists in the caller's project."""
    if request.run_id is None:
        return
    try:
        store.runs.get(request.run_id)
    except NotFound as exc:
        raise InvalidInput(
            f"run {request.run_id!r} does not exist",
            [FieldIssue("run_id", "create the run first with POST /v1/runs and use its id")],
        ) from exc


def submit_evaluation(store: Store, settings: Settings, request: EvaluationCreate) -> JobRecord:
    try:
        batch = store.meta.get_batch(request.batch_id)
    except NotFound as exc:
        raise InvalidInput(
            f"batch {request.batch_id!r} does not exist",
            [FieldIssue("batch_id", "create the batch first with POST /v1/batches and use its id")],
        ) from exc
    validate_request(request, batch)
    validate_baselines(store, request, batch)
    validate_probability_sections(request, batch)
    validate_robustness(store, request, batch)
    validate_slices(request, batch)
    validate_outbound_urls(request, settings)
    validate_run(store, request)
    job = JobRecord(
        id=new_id("j"),
        batch_id=batch.id,
        model_name=batch.model_name,
        model_version=batch.model_version,
        status="queued",
        progress=0.0,
        request=request.model_dump(mode="json", exclude_none=True),
        error=None,
        attempts=0,
        max_attempts=settings.max_attempts,
        lease_owner=None,
        lease_expires_at=None,
        created_at=utcnow(),
        started_at=None,
        finished_at=None,
        # The batch was found in the caller's project (store.meta is that project's view).
        project=batch.project,
    )
    store.meta.insert_job(job)
    return job
