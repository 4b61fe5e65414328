"""``/v1/batches``: prediction batches in, metadata and sample logs out, late labels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from schemas.batches import Batch, BatchList, LabelUpdateResult, SampleRow, SampleRowList
from schemas.problems import problem_responses
from service import ingest
from service.api.body import BodyDep
from service.api.deps import PagingDep, StoreDep
from service.errors import Conflict
from service.ingest.canonical import LABEL, PREDICTION, SAMPLE_ID
from service.store import Store
from service.store.paging import decode_offset, encode_offset

router = APIRouter(prefix="/v1/batches", tags=["batches"])

_FORMATS_DOC = """
Send the batch as JSON (row or column form, see `BatchCreate`), CSV (`text/csv`), Parquet
(`application/vnd.apache.parquet`) or Arrow IPC stream (`application/vnd.apache.arrow.stream`).
For CSV/Parquet/Arrow, `model`, `version`, `task`, `positive_class` and `classes` (comma-separated)
are query parameters; multiclass score columns are `score__<class>`.
"""


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Batch,
    summary="Create a batch",
    description=_FORMATS_DOC,
    responses=problem_responses(400, 401, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchCreate"}},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
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
async def create_batch(request: Request, body: BodyDep, store: StoreDep, response: Response) -> Batch:
    content_type = request.headers.get("content-type", "")
    params = dict(request.query_params)
    # Decoding and validation are CPU-bound: keep them off the event loop.
    batch = await run_in_threadpool(ingest.ingest_body, body, content_type, params)
    record = await run_in_threadpool(store.save_batch, batch)
    response.headers["Location"] = f"/v1/batches/{record.id}"
    request.app.state.telemetry.rows_ingested(batch.rows)
    return record.to_wire()


@router.get(
    "", response_model=BatchList, summary="List batches, newest first", responses=problem_responses(401, 422)
)
def list_batches(
    store: StoreDep,
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
def get_batch(batch_id: str, store: StoreDep) -> Batch:
    return store.meta.get_batch(batch_id).to_wire()


@router.get(
    "/{batch_id}/rows",
    response_model=SampleRowList,
    summary="The sample log: sample id, prediction and label, in upload order",
    responses=problem_responses(401, 404, 422),
)
def list_rows(batch_id: str, store: StoreDep, paging: PagingDep) -> SampleRowList:
    record = store.meta.get_batch(batch_id)
    offset = decode_offset(paging.page_token)
    table = store.files.read(record.data_path, columns=[SAMPLE_ID, PREDICTION, LABEL])
    page = table.slice(offset, paging.page_size).to_pylist()
    next_offset = offset + len(page)
    token = encode_offset(next_offset) if next_offset < table.num_rows else None
    return SampleRowList(data=[SampleRow.model_validate(r) for r in page], next_page_token=token)


@router.put(
    "/{batch_id}/labels",
    response_model=LabelUpdateResult,
    summary="Add late ground truth, joined by sample_id",
    description="Ids that match no row are listed in `unmatched_sample_ids`; nothing is dropped silently.",
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422),
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
async def put_labels(batch_id: str, request: Request, body: BodyDep, store: StoreDep) -> LabelUpdateResult:
    content_type = request.headers.get("content-type", "")
    update = await run_in_threadpool(ingest.parse_label_update, body, content_type)
    return await run_in_threadpool(_apply_labels, store, batch_id, update)


def _apply_labels(store: Store, batch_id: str, update: Any) -> LabelUpdateResult:
    # Optimistic concurrency: if another label update rewrote the file meanwhile, redo the merge
    # on its output instead of overwriting it.
    for _ in range(5):
        record = store.meta.get_batch(batch_id)
        current = ingest.load_canonical(store.files.read(record.data_path), record.spec)
        merged = ingest.merge_labels(current, update)
        path = store.files.write(batch_id, merged.batch.table, version=record.data_version + 1)
        if store.meta.replace_batch_data(
            batch_id,
            expected_version=record.data_version,
            data_path=path,
            labeled_rows=merged.batch.labeled_rows,
        ):
            store.files.remove_file(record.data_path)
            return LabelUpdateResult(
                batch_id=batch_id,
                updated=merged.updated,
                labeled_rows=merged.batch.labeled_rows,
                unmatched_sample_ids=merged.unmatched_sample_ids,
            )
        store.files.remove_file(path)
    raise Conflict(f"batch {batch_id!r} is being relabelled concurrently; retry the request")


@router.delete(
    "/{batch_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a batch and its rows",
    responses=problem_responses(401, 404),
)
def delete_batch(batch_id: str, store: StoreDep) -> Response:
    store.delete_batch(batch_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
