"""The peak memory of this worker process during one job, for the job's end log line.

On Linux the kernel keeps the process's high-water mark of resident memory (``VmHWM`` in
``/proc/self/status``) and resets it to the current size when ``5`` is written to
``/proc/self/clear_refs``, so a reset at job start and a read at job end give the job's own peak.
Elsewhere (or where ``/proc`` is not writable) the best available figure is the process's
lifetime peak from ``getrusage``, which is never lower than the job's.
"""

from __future__ import annotations

import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Start a new high-water mark; False when the platform keeps only the lifetime peak."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_mib() -> float | None:
    """Peak resident memory in MiB since :func:`reset_peak` (or the process's lifetime peak)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # kilobytes on Linux, bytes on macOS
    return max_rss / (1024 * 1024) if sys.platform == "darwin" else max_rss / 1024
