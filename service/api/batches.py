"""``/v1/batches``: prediction batches in, metadata and sample logs out, late labels."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from schemas.batches import Batch, BatchList, LabelUpdateResult, SampleRow, SampleRowList
from schemas.problems import problem_responses
from service import ingest
from service.api.body import BodyDep
from service.api.deps import IdempotencyKeyHeader, PagingDep, ProjectStoreDep, SettingsDep, create_once
from service.canonical import LABEL, PREDICTION, SAMPLE_ID
from service.store import BatchRecord, Store
from service.store.paging import decode_offset, encode_offset

router = APIRouter(prefix="/v1/batches", tags=["batches"])

_FORMATS_DOC = """
Send the batch as JSON (row or column form, see `BatchCreate`), CSV (`text/csv`), Parquet
(`application/vnd.apache.parquet`) or Arrow IPC stream (`application/vnd.apache.arrow.stream`).
A file sent as `application/octet-stream` is read as the format its first bytes show: Parquet
(`PAR1`), Arrow IPC stream (`FF FF FF FF`) or file (`ARROW1`), else UTF-8 CSV with a header line;
other bytes are a 415. For CSV/Parquet/Arrow, `model`, `version`, `task`, `positive_class` and
`classes` (comma-separated) are query parameters; multiclass score columns are `score__<class>`.
"""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Batch,
    summary="Create a batch",
    description=_FORMATS_DOC,
    responses=problem_responses(400, 401, 403, 409, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": desc,
            }
            for name, desc in [
                ("model", "Model name (non-JSON bodies)."),
                ("version", "Model version (non-JSON bodies)."),
                ("task", "binary | multiclass | regression (non-JSON bodies)."),
                ("positive_class", "Binary positive class (non-JSON bodies)."),
                ("classes", "Comma-separated class list (non-JSON bodies)."),
            ]
        ],
    },
)
async def create_batch(
    request: Request,
    body: BodyDep,
    store: ProjectStoreDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    params = dict(request.query_params)
    limits = ingest.IngestLimits.from_settings(settings)

    async def create(target: Store) -> BatchRecord:
        # Decoding and validation are CPU-bound: body.decode runs them in a worker thread, on the body
        # read in place (memory-mapped once it is large); BodyDep closes it after the request.
        batch = await body.decode(ingest.ingest_body, content_type, params, limits=limits)
        record = await run_in_threadpool(target.save_batch, batch)
        request.app.state.telemetry.rows_ingested(batch.rows)
        return record

    # The header is read (and checked) by create_once; the parameter documents it.
    return await create_once(request, store, settings, body.reader(), create)


@router.get(
    "",
    response_model=BatchList,
    summary="List batches, newest first",
    responses=problem_responses(400, 401, 422),
)
def list_batches(
    store: ProjectStoreDep,
    paging: PagingDep,
    model: Annotated[str | None, Query(description="Only batches of this model name.")] = None,
    version: Annotated[str | None, Query(description="Only batches of this model version.")] = None,
) -> BatchList:
    records, token = store.meta.list_batches(
        model=model, version=version, page_size=paging.page_size, page_token=paging.page_token
    )
    return BatchList(data=[r.to_wire() for r in records], next_page_token=token)


@router.get(
    "/{batch_id}", response_model=Batch, summary="Batch metadata", responses=problem_responses(401, 404)
)
def get_batch(batch_id: str, store: ProjectStoreDep) -> Batch:
    return store.meta.get_batch(batch_id).to_wire()


@router.get(
    "/{batch_id}/rows",
    response_model=SampleRowList,
    summary="The sample log: sample id, prediction and label, in upload order",
    responses=problem_responses(400, 401, 404, 422),
)
def list_rows(batch_id: str, store: ProjectStoreDep, paging: PagingDep) -> SampleRowList:
    scope = f"rows:{store.project}:{batch_id}"  # a token of another batch or list is a 400
    offset = decode_offset(paging.page_token, scope=scope)
    # Only the row groups holding this page are read, not whole columns.
    table, total = store.read_rows(
        batch_id, offset=offset, limit=paging.page_size, columns=[SAMPLE_ID, PREDICTION, LABEL]
    )
    page = table.to_pylist()
    next_offset = offset + len(page)
    token = encode_offset(next_offset, scope=scope) if next_offset < total else None
    return SampleRowList(data=[SampleRow.model_validate(r) for r in page], next_page_token=token)


@router.put(
    "/{batch_id}/labels",
    response_model=LabelUpdateResult,
    summary="Add late ground truth, joined by sample_id",
    description="Ids that match no row are listed in `unmatched_sample_ids`; nothing is dropped silently.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/LabelUpdate"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def put_labels(
    batch_id: str, request: Request, body: BodyDep, store: ProjectStoreDep, settings: SettingsDep
) -> LabelUpdateResult:
    content_type = request.headers.get("content-type", "")
    limits = ingest.IngestLimits.from_settings(settings)
    update = await body.decode(ingest.parse_label_update, content_type, limits=limits)
    # Read, merge, write a new version, compare-and-swap, retry on a concurrent update: the store's.
    merge = functools.partial(ingest.merge_stored_labels, update=update)
    return await run_in_threadpool(store.update_labels, batch_id, merge)


@router.delete(
    "/{batch_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a batch and its rows",
    responses=problem_responses(401, 403, 404),
)
def delete_batch(batch_id: str, store: ProjectStoreDep) -> Response:
    store.delete_batch(batch_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
