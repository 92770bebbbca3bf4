"""Process facts the master needs (RSS of workers), read through psutil.

The supervisor is the only package that imports psutil; `granian._granian.ProcInfoCollector`
delegates here. psutil is imported on first use, not with this module: only `--workers-max-rss`
needs it in the master (loaded, it added 0.6 MB to a slim master's 23.6 MB RSS, 2.7 MB to a bare
interpreter); tests/test_master_memory.py checks a default master does not load it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def rss(pid: int) -> int | None:
    """Resident set size of `pid` in bytes, None when the process is gone."""
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def memory(pids: Iterable[int] | None = None) -> dict[int, int]:
    """`{pid: rss_bytes}` for the calling process and `pids` (default: all its descendants)."""
    import psutil

    me = os.getpid()
    if pids is None:
        try:
            wanted = [me, *(p.pid for p in psutil.Process(me).children(recursive=True))]
        except psutil.Error:
            wanted = [me]
    else:
        wanted = [me, *pids]
    out: dict[int, int] = {}
    for pid in wanted:
        value = rss(pid)
        if value is not None:
            out[pid] = value
    return out


def pid_exists(pid: int) -> bool:
    """Whether a process `pid` exists (a zombie counts). kill(2) with signal 0 checks without
    psutil: ESRCH means no such process, EPERM one we may not signal (so it exists), the test
    `psutil.pid_exists` makes on POSIX. PID <= 0 names a process group in kill(2), never one
    process, so it is reported absent."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
