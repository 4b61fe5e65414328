"""Request and ingest counters, exposed in the Prometheus text format at ``/metrics``.

Hand-written on purpose: a handful of counters does not need a client library, and the
job gauges are read from the store at scrape time so every API replica reports the same.
"""

from __future__ import annotations

import threading
from collections import defaultdict


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._durations: dict[tuple[str, str], float] = defaultdict(float)
        self._rows = 0

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            self._durations[(method, route)] += seconds

    def rows_ingested(self, rows: int) -> None:
        with self._lock:
            self._rows += rows

    def render(self, job_counts: dict[str, int]) -> str:
        lines = [
            "# HELP yardstick_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE yardstick_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(
                    f'yardstick_http_requests_total{{method="{method}",route="{route}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP yardstick_http_request_seconds_total Time spent answering, by route.",
                "# TYPE yardstick_http_request_seconds_total counter",
            ]
            for (method, route), s in sorted(self._durations.items()):
                lines.append(
                    f'yardstick_http_request_seconds_total{{method="{method}",route="{route}"}} {s:.6f}'
                )
            lines += [
                "# HELP yardstick_rows_ingested_total Rows accepted into batches.",
                "# TYPE yardstick_rows_ingested_total counter",
                f"yardstick_rows_ingested_total {self._rows}",
            ]
        lines += ["# HELP yardstick_jobs Jobs by status.", "# TYPE yardstick_jobs gauge"]
        for job_status in ("queued", "running", "succeeded", "failed", "cancelled"):
            lines.append(f'yardstick_jobs{{status="{job_status}"}} {job_counts.get(job_status, 0)}')
        return "\n".join(lines) + "\n"
