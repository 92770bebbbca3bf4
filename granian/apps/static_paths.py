"""Mapping request paths to files under the `--static-path-*` mounts, never outside them.

Pure apart from `os.path.realpath`/`os.stat`: the static handler asks `StaticPaths.match()`
and gets either None (not a static route: the app handles it), NOT_FOUND (a static route but
no servable file: 404, as Granian answers) or the real path of a regular file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

NOT_FOUND = ""


class StaticPaths:
    """The configured (route, mount) pairs, longest route first so `/static/img` wins over
    `/static` when both are mounted."""

    __slots__ = ("_routes", "_dir_to_file")

    def __init__(self, routes: Sequence[str], mounts: Sequence[str], dir_to_file: str | None) -> None:
        pairs: list[tuple[bytes, str]] = []
        # settings guarantees one route per mount when any mount is given
        for route, mount in zip(routes, mounts, strict=False):
            r = "/" + route.strip("/")
            # realpath once: the containment test compares resolved paths, so a mount that is
            # itself a symlink still works and symlinks inside it cannot lead out of it
            pairs.append((r.encode("utf-8").rstrip(b"/"), os.path.realpath(mount)))
        pairs.sort(key=lambda p: len(p[0]), reverse=True)
        self._routes = pairs
        self._dir_to_file = dir_to_file

    def __bool__(self) -> bool:
        return bool(self._routes)

    def match(self, raw_path: bytes) -> str | None:
        """`raw_path` is the request target's path, still percent-encoded. Matching happens on
        the raw form (an encoded `%2F` cannot fake a route), resolution on the decoded form."""
        for route, mount in self._routes:
            if raw_path.startswith(route) and (len(raw_path) == len(route) or raw_path[len(route)] == 0x2F):
                return self._resolve(raw_path[len(route) :], mount)
        return None

    def _resolve(self, rel_raw: bytes, mount: str) -> str:
        rel = unquote_to_bytes(rel_raw) if 0x25 in rel_raw else rel_raw
        if b"\x00" in rel:
            # a NUL cannot name a file; os.* would raise ValueError
            return NOT_FOUND
        # os.fsdecode keeps undecodable octets (surrogateescape), as the filesystem does
        candidate = os.path.join(mount, os.fsdecode(rel).lstrip("/"))
        # realpath resolves `..` (also the decoded `%2e%2e`) and every symlink; what is left
        # must still be the mount or below it (a plain prefix test would admit "/srv/static2")
        real = os.path.realpath(candidate)
        if real != mount and not real.startswith(mount.rstrip(os.sep) + os.sep):
            return NOT_FOUND
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            return NOT_FOUND
        if stat.S_ISDIR(st.st_mode):
            if not self._dir_to_file:
                return NOT_FOUND
            inner = os.path.realpath(os.path.join(real, self._dir_to_file))
            if not inner.startswith(mount.rstrip(os.sep) + os.sep):
                return NOT_FOUND
            try:
                st = os.stat(inner)
            except (OSError, ValueError):
                return NOT_FOUND
            real = inner
        if not stat.S_ISREG(st.st_mode):
            # devices, FIFOs and sockets are not documents (and a FIFO would block the read)
            return NOT_FOUND
        return real
