"""Batch rows as Parquet files under ``<data dir>/batches/<batch id>/``.

Files are written to a temporary name in the same directory, flushed to disk and
renamed into place, so a crash mid-upload never leaves a visible half file; the
metadata row that makes a batch visible is inserted only after the rename. A temporary
name carries its writer's identity (machine boot, pid namespace, pid), so the start-up
sweep removes a killed writer's temporaries at once (:meth:`BatchFiles.sweep_temporaries`).

A file is never changed once written: a label update writes a new version and removes the
old one. A job reads one version of each batch from start to end by pinning it
(:class:`JobPins`): a hard link under ``<data dir>/batches/.pins/<job id>.<attempt>/`` keeps
the version's inode alive when the batch is relabelled or deleted meanwhile.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from service.errors import Conflict, NotFound, YardstickError
from service.store.records import BatchRecord

#: Schema metadata key of a digest of the file's ``sample_id`` column (ids and their order).
SAMPLE_ID_DIGEST_KEY = b"yardstick.sample_id_digest"
_SAMPLE_ID = "sample_id"
#: Rows per Parquet row group: a page of the sample log reads only the groups it covers.
DEFAULT_ROW_GROUP_SIZE = 256 * 1024
#: The directory, under the batches root, of the versions pinned by running jobs.
PINS_DIR = ".pins"
#: A temporary file whose writer cannot be checked (another machine or pid namespace, or an
#: older name) is removed at start-up once nothing has written to it for this long.
TMP_GRACE_SECONDS = 60.0
_TMP_PREFIX = ".tmp"
_log = logging.getLogger(__name__)


def sample_id_digest(column: pa.Array | pa.ChunkedArray) -> bytes | None:
    """A digest of an id column's type, length, values and order (hex, as bytes).

    Two columns with equal digests hold the same values in the same order, so a reader
    can skip comparing a million ids. None for a type without a stable layout here, or nulls.

    It pays for itself (``benchmarks/bench_tuning.py``, 1M rows, 2 cores, three runs): the
    job with the full baseline panel, whose champion and human batches hold the model's ids,
    takes 0.69-0.85x the time it takes without digests, for 0.016-0.021 s per write (0.05x of
    the Parquet write itself).
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.null_count:
        return None
    kind = array.type
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{kind}|{len(array)}|".encode())
    if len(array) == 0:
        return h.hexdigest().encode()
    buffers = array.buffers()
    if (
        pa.types.is_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_string(kind)
        or (pa.types.is_large_binary(kind))
    ):
        width = np.int64 if (pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)) else np.int32
        offsets = np.frombuffer(buffers[1], dtype=width)[array.offset : array.offset + len(array) + 1]
        start, end = int(offsets[0]), int(offsets[-1])
        h.update((offsets - offsets[0] if start else offsets).data)
        h.update(memoryview(buffers[2])[start:end] if buffers[2] is not None else b"")
    elif pa.types.is_integer(kind):
        width = kind.bit_width // 8
        h.update(memoryview(buffers[1])[array.offset * width : (array.offset + len(array)) * width])
    else:
        return None
    return h.hexdigest().encode()


def _with_sample_id_digest(table: pa.Table) -> pa.Table:
    """``table`` with the digest of its sample ids in the schema metadata (a stale one dropped)."""
    metadata = dict(table.schema.metadata or {})
    metadata.pop(SAMPLE_ID_DIGEST_KEY, None)
    if _SAMPLE_ID in table.column_names:
        digest = sample_id_digest(table.column(_SAMPLE_ID))
        if digest is not None:
            metadata[SAMPLE_ID_DIGEST_KEY] = digest
    return table.replace_schema_metadata(metadata or None)


@functools.cache
def _machine() -> str:
    """This boot of this machine (containers share it with their host), as a file-name part."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = socket.gethostname()
    return re.sub(r"[^A-Za-z0-9-]", "-", boot) or "unknown"


@functools.cache
def _pid_namespace() -> str:
    """This process's pid namespace (two containers on one machine number their pids apart)."""
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or "0"
    except OSError:
        return "0"


def _writer_tag() -> str:
    return f"{_machine()}.{_pid_namespace()}.{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _batch_id_of(relative_path: str) -> str:
    """The batch a stored or pinned file belongs to (for messages: never show a path)."""
    parts = Path(relative_path).parts
    if len(parts) >= 3 and parts[0] == PINS_DIR:
        return Path(parts[-1]).stem
    return parts[0] if parts else relative_path


def _gone(relative_path: str) -> NotFound:
    return NotFound(
        f"the rows of batch {_batch_id_of(relative_path)!r} are no longer stored "
        "(the batch was deleted, or relabelled meanwhile: retry)"
    )


def _unreadable(relative_path: str) -> YardstickError:
    """A stored file that cannot be read (damaged, unreadable): the path goes to the log only."""
    _log.exception("could not read %s", relative_path)
    return YardstickError(
        f"the stored rows of batch {_batch_id_of(relative_path)!r} could not be read; "
        "the server log has the details",
        status=500,
        title="Stored rows unreadable",
        type_slug="stored-rows-unreadable",
    )


class BatchFiles:
    def __init__(self, root: Path, *, row_group_size: int = DEFAULT_ROW_GROUP_SIZE) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.row_group_size = row_group_size

    @property
    def pins_root(self) -> Path:
        return self.root / PINS_DIR

    def write(self, batch_id: str, table: pa.Table, *, version: int) -> str:
        """Atomically write ``table`` as version ``version`` of ``batch_id``; return its relative path."""
        directory = self.root / batch_id
        directory.mkdir(parents=True, exist_ok=True)
        # A unique name per write: two concurrent rewrites never clobber each other's file.
        final = directory / f"v{version}-{uuid.uuid4().hex[:12]}.parquet"
        # The writer's identity in the name: a sweep can tell a dead writer's leftovers at once.
        tmp = directory / f"{_TMP_PREFIX}.{_writer_tag()}.{uuid.uuid4().hex[:12]}.parquet"
        try:
            # The ids' digest lets a comparison with another batch skip reading its ids.
            table = _with_sample_id_digest(table)
            # Uncompressed-ish but fast: snappy is the best speed/size trade for re-reads.
            pq.write_table(table, tmp, compression="snappy", row_group_size=self.row_group_size)
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return str(final.relative_to(self.root))

    def read(self, relative_path: str, *, columns: list[str] | None = None) -> pa.Table:
        """The file's rows (``columns`` only); NotFound naming the batch when the file is gone."""
        try:
            return pq.read_table(self.root / relative_path, columns=columns)
        except FileNotFoundError as exc:
            raise _gone(relative_path) from exc
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(relative_path) from exc

    def read_rows(
        self, relative_path: str, *, offset: int, limit: int, columns: list[str]
    ) -> tuple[pa.Table, int]:
        """Rows ``[offset, offset + limit)`` and the file's row count, reading only the row groups
        that hold them (a page of a 20M-row batch reads one group, not whole columns)."""
        try:
            with pq.ParquetFile(self.root / relative_path) as parquet:
                meta = parquet.metadata
                groups: list[int] = []
                first_row = start = 0
                for index in range(meta.num_row_groups):
                    rows = meta.row_group(index).num_rows
                    if start < offset + limit and start + rows > offset and rows > 0:
                        if not groups:
                            first_row = start
                        groups.append(index)
                    start += rows
                if not groups or limit <= 0:
                    return parquet.schema_arrow.empty_table().select(columns), meta.num_rows
                table = parquet.read_row_groups(groups, columns=columns)
                return table.slice(offset - first_row, limit), meta.num_rows
        except FileNotFoundError as exc:
            raise _gone(relative_path) from exc
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(relative_path) from exc

    def footer(self, relative_path: str) -> tuple[int, bytes | None]:
        """A file's row count and sample-id digest (None for files written before digests),
        from the Parquet footer alone."""
        try:
            meta = pq.read_metadata(self.root / relative_path)
        except FileNotFoundError as exc:
            raise _gone(relative_path) from exc
        except (OSError, pa.ArrowException) as exc:
            raise _unreadable(relative_path) from exc
        return meta.num_rows, (meta.metadata or {}).get(SAMPLE_ID_DIGEST_KEY)

    def remove_file(self, relative_path: str) -> None:
        (self.root / relative_path).unlink(missing_ok=True)

    def remove_batch(self, batch_id: str) -> None:
        shutil.rmtree(self.root / batch_id, ignore_errors=True)

    def batch_ids_on_disk(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    # -- temporaries of interrupted writes ------------------------------------------------------

    def sweep_temporaries(self, *, grace_seconds: float = TMP_GRACE_SECONDS) -> set[str]:
        """Remove the temporary files of writes that can no longer finish; return the batch ids
        whose directory lost one.

        A temporary written on this machine, in this pid namespace, goes at once when its writer's
        pid is dead (and after an hour if the pid lives on: it may have been reused). One whose
        writer cannot be checked from here (another machine on a shared data directory, another
        container, a name from before writer tags) goes once nothing has written to it for
        ``grace_seconds``; a live writer's file grows with every row group.
        """
        here = f"{_machine()}.{_pid_namespace()}."
        now = time.time()
        touched: set[str] = set()
        for batch_id in self.batch_ids_on_disk():
            for tmp in (self.root / batch_id).glob(f"{_TMP_PREFIX}*"):
                tag = tmp.name[len(_TMP_PREFIX) + 1 :]
                pid = tag[len(here) :].split(".", 1)[0] if tag.startswith(here) else ""
                try:
                    if pid.isdigit():
                        dead = not _pid_alive(int(pid)) or now - tmp.stat().st_mtime > 3600.0
                    else:
                        dead = now - tmp.stat().st_mtime > grace_seconds
                    if dead:
                        tmp.unlink()
                        touched.add(batch_id)
                except FileNotFoundError:
                    continue  # renamed into place or removed meanwhile
        return touched

    # -- pins: the versions a running job reads --------------------------------------------------

    def pin(self, relative_path: str, job_directory: str, batch_id: str) -> str:
        """Keep the file at ``relative_path`` readable for one job, whatever happens to the batch;
        return the pinned copy's relative path. A hard link (O(1), the same inode); a copy only
        where the filesystem has no hard links. FileNotFoundError when the file is already gone."""
        target_dir = self.pins_root / job_directory
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / f"{batch_id}.parquet"
        try:
            os.link(self.root / relative_path, target)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            _log.warning(
                "this filesystem refused a hard link (%s): pinning batch %s by copying", exc, batch_id
            )
            shutil.copyfile(self.root / relative_path, target)
        return str(target.relative_to(self.root))

    def pinned_jobs(self) -> list[tuple[str, int]]:
        """The (job id, attempt) of every pin directory."""
        if not self.pins_root.is_dir():
            return []
        found = []
        for directory in self.pins_root.iterdir():
            job_id, _, attempt = directory.name.rpartition(".")
            if job_id and attempt.isdigit():
                found.append((job_id, int(attempt)))
        return found

    def unpin(self, job_id: str, attempt: int) -> None:
        shutil.rmtree(self.pins_root / f"{job_id}.{attempt}", ignore_errors=True)


class JobPins:
    """The version of each batch one job attempt reads, pinned when the job starts.

    :meth:`pin` takes one snapshot of a batch's record and hard-links the file that record
    names; :meth:`record` hands out that snapshot, whose ``data_path`` is the pinned file, so
    every read of the job sees one version from start to end. A batch deleted before it was
    pinned raises NotFound naming it from :meth:`record`. :meth:`release` removes the pins.
    """

    def __init__(
        self, files: BatchFiles, lookup: Callable[[str], BatchRecord], job_id: str, attempt: int
    ) -> None:
        self.files, self.job_id, self.attempt = files, job_id, attempt
        self._lookup = lookup
        self._records: dict[str, BatchRecord | None] = {}
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self.files.pins_root / f"{self.job_id}.{self.attempt}"

    def pin(self, batch_id: str) -> BatchRecord | None:
        """Pin the current version of ``batch_id`` (once per job); None when the batch is gone."""
        with self._lock:
            if batch_id in self._records:
                return self._records[batch_id]
            for _ in range(5):
                try:
                    record = self._lookup(batch_id)
                except NotFound:
                    self._records[batch_id] = None
                    return None
                try:
                    path = self.files.pin(record.data_path, f"{self.job_id}.{self.attempt}", batch_id)
                except FileNotFoundError:
                    continue  # relabelled (or deleted) between the lookup and the link: look again
                pinned = replace(record, data_path=path)
                self._records[batch_id] = pinned
                return pinned
            raise Conflict(f"batch {batch_id!r} kept being rewritten while this job started; retry the job")

    def record(self, batch_id: str) -> BatchRecord:
        """The pinned snapshot of ``batch_id`` (pinned now if the job did not name it up front)."""
        record = self.pin(batch_id)
        if record is None:
            raise NotFound(f"batch {batch_id!r} does not exist (it was deleted before this job read it)")
        return record

    @property
    def pinned(self) -> dict[str, BatchRecord | None]:
        with self._lock:
            return dict(self._records)

    def release(self) -> None:
        self.files.unpin(self.job_id, self.attempt)
