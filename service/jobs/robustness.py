"""The robustness section of one evaluation: sample rows, build changed copies, ask the model
endpoint (or read paired batches), and hand the answers to the pure robustness worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from schemas.evaluations import EvaluationCreate
from schemas.results import Finding
from schemas.robustness import (
    Expectation,
    ExpectationResult,
    PairTest,
    PerturbationResult,
    RobustnessRequest,
    RobustnessResult,
)
from service.canonical import LABEL, PREDICTION, SAMPLE_ID, SCORE, join_on_sample_id
from service.errors import InvalidInput
from service.integrations.kserve import answers_from_predictions
from service.integrations.model_endpoint import EndpointError, predict
from service.integrations.outbound import OutboundPolicy
from service.jobs.decoding import label_values
from service.settings import Settings
from service.store import Store
from service.store.records import BatchRecord
from service.workers import robustness as rw

Progress = Callable[[float], None]
CopyKind = Literal["perturbation", "invariance", "directional"]


def run_robustness(
    store: Store, settings: Settings, batch: BatchRecord, request: EvaluationCreate, *, progress: Progress
) -> tuple[RobustnessResult, list[Finding]]:
    spec = request.robustness
    assert spec is not None
    result = RobustnessResult(sampled_rows=0, calls=0)
    if spec.endpoint is not None and (spec.perturbation or spec.invariance or spec.directional):
        result = _endpoint_tests(store, settings, batch, spec, request, progress)
    result.pairs = [_pair(store, batch, pair, spec) for pair in spec.pairs]
    return result, findings_for(result, spec, batch)


def _endpoint_tests(
    store: Store,
    settings: Settings,
    batch: BatchRecord,
    spec: RobustnessRequest,
    request: EvaluationCreate,
    progress: Progress,
) -> RobustnessResult:
    assert spec.endpoint is not None
    table = store.files.read(batch.data_path)
    sample = table.take(
        pa.array(rw.sample_rows(table.num_rows, sample_size=spec.sample_size, seed=spec.seed))
    )
    features = _plain(sample.select(batch.column_names("feature")))
    sample_ids = sample.column(SAMPLE_ID).to_numpy(zero_copy_only=False)
    try:
        copies: list[tuple[CopyKind, Any, pa.Table, np.ndarray | None]] = []
        for perturbation in spec.perturbation:
            copies.append(
                ("perturbation", perturbation, rw.perturb(features, perturbation, seed=spec.seed), None)
            )
        for invariance in spec.invariance:
            swapped, swapped_rows = rw.invariance_copy(features, invariance)
            copies.append(("invariance", invariance, swapped, swapped_rows))
        for directional in spec.directional:
            moved = rw.directional_copy(features, directional)
            column = directional.column
            moved_rows = rw.changed_mask(features.column(column), moved.column(column))
            copies.append(("directional", directional, moved, moved_rows))
    except ValueError as exc:
        raise InvalidInput(f"robustness: {exc}") from exc

    # One stream of instances: the originals, then every changed copy, in order.
    tables = [features] + [c[2] for c in copies]
    instances = [row for t in tables for row in t.to_pylist()]
    policy = OutboundPolicy.from_settings(settings.outbound_allow)
    try:
        raw, calls = predict(spec.endpoint, instances, policy=policy, progress=progress)
    except EndpointError as exc:
        raise InvalidInput(f"robustness endpoint: {exc}") from exc
    n = features.num_rows
    answers = []
    for k in range(len(tables)):
        try:
            answers.append(
                answers_from_predictions(
                    raw[k * n : (k + 1) * n],
                    task=batch.task,
                    classes=batch.classes,
                    positive_class=batch.positive_class,
                )
            )
        except ValueError as exc:
            raise InvalidInput(
                f"robustness endpoint {spec.endpoint.url} answered unusable predictions: {exc}"
            ) from exc
    original = answers[0]
    y_true = _labels(sample, batch)
    result = RobustnessResult(sampled_rows=n, calls=calls)
    for (kind, item, changed, mask), changed_answers in zip(copies, answers[1:], strict=True):
        before = features.column(item.column).to_pylist()
        after = changed.column(item.column).to_pylist()
        if kind == "perturbation":
            result.perturbation.append(
                rw.perturbation_result(
                    item,
                    original,
                    changed_answers,
                    task=batch.task,
                    sample_ids=sample_ids,
                    before_values=before,
                    after_values=after,
                    classes=batch.classes,
                    positive_class=batch.positive_class,
                    y_true=y_true,
                    metrics=request.metrics,
                    tolerance=spec.score_tolerance if batch.task == "regression" else 0.0,
                )
            )
            continue
        name = f"{item.column}: swap {item.swap}" if kind == "invariance" else _directional_name(item)
        expect: Expectation = "same" if kind == "invariance" else item.expect
        outcome = rw.expectation_result(
            name,
            kind,
            expect,
            original,
            changed_answers,
            task=batch.task,
            tolerance=spec.score_tolerance,
            sample_ids=sample_ids,
            before_values=before,
            after_values=after,
            positive_class=batch.positive_class,
            mask=mask,
        )
        (result.invariance if kind == "invariance" else result.directional).append(outcome)
    return result


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (how ingest stores repeated strings) back to plain values."""
    columns = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _directional_name(item: Any) -> str:
    change = next(
        f"{k} {getattr(item, k)!r}" for k in ("add", "multiply", "set") if getattr(item, k) is not None
    )
    return f"{item.column}: {change}, expect {item.expect}"


def _labels(sample: pa.Table, batch: BatchRecord) -> np.ndarray | None:
    """Class codes (-1 unlabeled) or regression values (NaN unlabeled), as the worker takes them."""
    column = sample.column(LABEL)
    if column.null_count == len(column):
        return None
    return label_values(column, batch)


def _answers_of(table: pa.Table, batch: BatchRecord) -> rw.Answers:
    scores = table.column(SCORE).to_numpy() if SCORE in table.column_names else None
    if batch.task == "regression":
        scores = table.column(PREDICTION).to_numpy().astype(np.float64)
    return rw.Answers(
        predictions=np.asarray(table.column(PREDICTION).to_pylist(), dtype=object), scores=scores
    )


def _pair(store: Store, batch: BatchRecord, pair: PairTest, spec: RobustnessRequest) -> ExpectationResult:
    original = store.batch(pair.original_batch_id)
    perturbed = store.batch(pair.perturbed_batch_id)
    wanted = [SAMPLE_ID, PREDICTION, SCORE]
    a = store.files.read(original.data_path, columns=[c for c in wanted if c in original.column_names()])
    b = store.files.read(perturbed.data_path, columns=[c for c in wanted if c in perturbed.column_names()])
    join = join_on_sample_id(a.column(SAMPLE_ID), b.column(SAMPLE_ID))
    a_shared = a.filter(join.matched)
    b_shared = b.take(join.right_rows)
    outcome = rw.expectation_result(
        pair.name,
        "pair",
        pair.expect,
        _answers_of(a_shared, batch),
        _answers_of(b_shared, batch),
        task=batch.task,
        tolerance=spec.score_tolerance,
        sample_ids=a_shared.column(SAMPLE_ID).to_numpy(zero_copy_only=False),
        positive_class=batch.positive_class,
    )
    outcome.details |= {
        "original_batch_id": original.id,
        "perturbed_batch_id": perturbed.id,
        "joined_rows": a_shared.num_rows,
        "original_only_rows": a.num_rows - a_shared.num_rows,
        "perturbed_only_rows": b.num_rows - a_shared.num_rows,
    }
    return outcome


def findings_for(result: RobustnessResult, spec: RobustnessRequest, batch: BatchRecord) -> list[Finding]:
    findings = []
    for p in result.perturbation if batch.task != "regression" else []:
        if p.flip_rate > spec.max_flip_rate:
            findings.append(_finding_perturbation(p, spec))
    for outcome in [*result.invariance, *result.directional, *result.pairs]:
        rate = outcome.violation_rate
        if rate is not None and rate > spec.max_violation_rate:
            kind = "invariance_violation" if outcome.expect == "same" else "directional_violation"
            findings.append(
                Finding(
                    kind=kind,
                    severity="critical" if rate > 0.1 else "warning",
                    impact=rate,
                    message=f"{outcome.name}: {outcome.violations} of {outcome.rows} rows "
                    f"({rate:.1%}) broke the expectation '{outcome.expect}'.",
                    details={
                        "test": outcome.name,
                        "kind": outcome.kind,
                        "violations": outcome.violations,
                        "rows": outcome.rows,
                        "violation_rate": rate,
                        "tolerance": spec.max_violation_rate,
                        "examples": [e.model_dump(mode="json") for e in outcome.examples[:3]],
                    },
                )
            )
    return findings


def _finding_perturbation(p: PerturbationResult, spec: RobustnessRequest) -> Finding:
    return Finding(
        kind="fragile_to_perturbation",
        severity="warning",
        impact=p.flip_rate,
        message=f"{p.noise} noise on {p.column} (scale {p.scale:g}) "
        f"flipped {p.flip_rate:.1%} of predictions, "
        f"above the tolerated {spec.max_flip_rate:.1%}.",
        details={
            "column": p.column,
            "noise": p.noise,
            "scale": p.scale,
            "flip_rate": p.flip_rate,
            "metric_drop": p.metric_drop,
        },
    )
