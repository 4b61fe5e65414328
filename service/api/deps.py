"""Annotated dependencies shared by the routers: settings, the caller's project and its store,
paging, and Idempotency-Key handling of create requests."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, BinaryIO

import anyio
from fastapi import Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from service.errors import Conflict, FieldIssue, InvalidInput, Unauthorized, YardstickError
from service.settings import DEFAULT_PROJECT, ApiKey, Settings
from service.store import Store
from service.store.records import BatchRecord, IdempotencyClaim, IdempotencyEntry, JobRecord, StoredAnswer


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> Store:
    """The store of every project: for health checks only; routes take :data:`ProjectStoreDep`."""
    store: Store = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]


# -- who is calling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The caller: the project its key belongs to, and whether the key may write."""

    project: str
    can_write: bool


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_api_key(request: Request, settings: SettingsDep) -> Principal:
    """The caller's project from its bearer key; every configured key is compared in constant time.

    With no keys configured every caller is project ``default`` and may write. A read-only key
    (``key:project:read``) gets 403 on any other method than GET, HEAD or OPTIONS.
    """
    if not settings.api_keys:
        principal = Principal(project=DEFAULT_PROJECT, can_write=True)
    else:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        presented = token.strip().encode() if scheme.lower() == "bearer" else b""
        matched: ApiKey | None = None
        for key in settings.api_keys:
            # No early exit: the time taken does not depend on which key (if any) matched.
            hit = hmac.compare_digest(presented, key.key.encode())
            matched = key if hit else matched
        if matched is None:
            raise Unauthorized("send a valid API key as `Authorization: Bearer <key>`")
        principal = Principal(project=matched.project, can_write=matched.can_write)
    if request.method not in READ_METHODS and not principal.can_write:
        raise YardstickError(
            f"this API key is read-only: it may read project {principal.project!r} but not "
            f"{request.method} to it",
            [FieldIssue("Authorization", "use a key configured without `:read` to change anything")],
            status=403,
            title="Forbidden",
            type_slug="read-only-key",
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(require_api_key)]


def get_project_store(request: Request, principal: PrincipalDep) -> Store:
    """The store as the caller's project sees it: other projects' batches and jobs are 404s."""
    return get_store(request).for_project(principal.project)


ProjectStoreDep = Annotated[Store, Depends(get_project_store)]


class Paging:
    def __init__(
        self,
        settings: SettingsDep,
        page_size: Annotated[int | None, Query(ge=1, description="Items per page.")] = None,
        page_token: Annotated[
            str | None, Query(description="`next_page_token` of the previous page.")
        ] = None,
    ) -> None:
        self.page_size = min(page_size or settings.default_page_size, settings.max_page_size)
        self.page_token = page_token


PagingDep = Annotated[Paging, Depends()]


# -- Idempotency-Key ----------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: How long a retry waits for the first request with its key to answer before a 409.
IDEMPOTENCY_WAIT_SECONDS = 10.0
#: A first request that has not answered after this long is presumed dead (its process was
#: killed): a retry takes its key over, and the first can no longer store its answer.
IDEMPOTENCY_LOCK_SECONDS = 600.0
_POLL_SECONDS = 0.05

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        pattern=r"^[\x21-\x7e]{1,255}$",
        description="Any unique value up to 255 visible ASCII characters. A retry with the same key "
        "and the same request (body, content type, query) gets the first answer again (same status, "
        "body and Location, with `Idempotent-Replayed: true`) and stores nothing twice; the same key "
        "with another request is a 422. Keys are per project and kept for "
        "YARDSTICK_IDEMPOTENCY_SECONDS (default 24 h). A retry that arrives while the first request "
        "runs waits for its answer, up to 10 s, then gets a 409: retry it later.",
    ),
]


def idempotency_key(request: Request) -> str | None:
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidInput(
            f"the {IDEMPOTENCY_HEADER} header is not a valid key",
            [FieldIssue(IDEMPOTENCY_HEADER, "use 1 to 255 visible ASCII characters, e.g. a UUID")],
        )
    return value


def request_fingerprint(
    body: bytes | bytearray | memoryview | BinaryIO, *, method: str, path: str, content_type: str, query: str
) -> str:
    """SHA-256 of what makes two requests the same: route, content type, query string and the
    raw body bytes (bytes, or a seekable file, read in chunks and rewound)."""
    digest = hashlib.sha256()
    for part in (method, path, content_type, query):
        encoded = part.encode("utf-8", "surrogateescape")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    if isinstance(body, bytes | bytearray | memoryview):
        digest.update(body)
    else:
        position = body.tell()
        body.seek(0)
        while chunk := body.read(1 << 20):
            digest.update(chunk)
        body.seek(position)
    return digest.hexdigest()


def created_answer(record: BatchRecord | JobRecord) -> StoredAnswer:
    """The answer to a create request: 201 + the batch, or 202 + the queued job."""
    if isinstance(record, BatchRecord):
        return StoredAnswer(201, record.to_wire().model_dump(mode="json"), f"/v1/batches/{record.id}")
    return StoredAnswer(202, record.to_wire().model_dump(mode="json"), f"/v1/jobs/{record.id}")


def _respond(answer: StoredAnswer, *, replayed: bool = False) -> JSONResponse:
    headers = {"Location": answer.location} if answer.location else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def _other_request() -> InvalidInput:
    return InvalidInput(
        f"this {IDEMPOTENCY_HEADER} was used with a different request (body, content type or query)",
        [FieldIssue(IDEMPOTENCY_HEADER, "use a new key for a new request; reuse a key only to retry")],
    )


async def create_once(
    request: Request,
    store: Store,
    settings: Settings,
    body: bytes | bytearray | memoryview | BinaryIO,
    create: Callable[[Store], Awaitable[BatchRecord | JobRecord]],
) -> JSONResponse:
    """Run ``create`` (which stores one batch or job through the store it is given) and answer
    with what it made, honouring an Idempotency-Key:

    - the first request with a key claims it (a unique (project, key) row: of two concurrent
      first requests exactly one does), runs, and stores its answer with its row in one
      transaction; when it fails, nothing is stored and the key is released;
    - a retry with the same fingerprint gets that answer again, without running;
    - a retry that arrives while the first runs polls until it answers (then the answer) or
      ``IDEMPOTENCY_WAIT_SECONDS`` pass (then 409);
    - the same key with another fingerprint is a 422 naming the header.
    """
    key = idempotency_key(request)
    if key is None:
        return _respond(created_answer(await create(store)))
    fingerprint = await run_in_threadpool(
        request_fingerprint,
        body,
        method=request.method,
        path=request.url.path,
        content_type=request.headers.get("content-type", ""),
        query=request.url.query,
    )
    deadline = time.monotonic() + IDEMPOTENCY_WAIT_SECONDS
    while True:
        got = await run_in_threadpool(
            store.meta.claim_idempotency_key,
            key,
            fingerprint,
            ttl_seconds=settings.idempotency_seconds,
            lock_seconds=IDEMPOTENCY_LOCK_SECONDS,
        )
        if isinstance(got, IdempotencyClaim):
            break
        entry: IdempotencyEntry | None = got
        while entry is not None:
            if entry.fingerprint != fingerprint:
                raise _other_request()
            if entry.answer is not None:
                return _respond(entry.answer, replayed=True)
            if time.monotonic() > deadline:
                raise Conflict(
                    f"a request with this {IDEMPOTENCY_HEADER} is still in progress; retry it later "
                    "to get its answer",
                    [FieldIssue(IDEMPOTENCY_HEADER, "the first request with this key has not answered yet")],
                )
            await anyio.sleep(_POLL_SECONDS)
            entry = await run_in_threadpool(store.meta.idempotency_entry, key)
        # The first request failed (and released the key) or its key expired: claim it again.
    claim = got
    try:
        record = await create(store.remembering(claim, created_answer))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(store.meta.release_idempotency_key, claim)
        raise
    return _respond(created_answer(record))
