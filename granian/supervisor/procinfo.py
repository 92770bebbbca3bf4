"""Process facts the master needs (RSS of workers), read through psutil.

The supervisor is the only package that imports psutil; `granian._granian.ProcInfoCollector`
delegates here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import psutil


def rss(pid: int) -> int | None:
    """Resident set size of `pid` in bytes, None when the process is gone."""
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def memory(pids: Iterable[int] | None = None) -> dict[int, int]:
    """`{pid: rss_bytes}` for the calling process and `pids` (default: all its descendants)."""
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


def parent_alive(pid: int) -> bool:
    return psutil.pid_exists(pid)
