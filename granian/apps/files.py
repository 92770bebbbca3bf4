"""Pure helpers for serving files: validators (ETag, Last-Modified), conditional requests and
single byte ranges. No I/O beyond `os.stat` results handed in; the static handler and the
interfaces' file responses decide what to send from these answers.

RFC 9110 is the reference throughout: §8.8 validators, §13 conditional requests, §14 ranges.
"""

from __future__ import annotations

import os
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime

# What `evaluate_range` answers besides a (start, end) pair.
RANGE_NONE = 0  # no usable Range: send the whole representation with 200
RANGE_UNSATISFIABLE = 1  # 416 with `content-range: bytes */size` (RFC 9110 §15.5.17)


def etag_for(st: os.stat_result) -> str:
    """A strong entity tag from size and modification time in ns (RFC 9110 §8.8.3): the same
    inexpensive validator nginx and Starlette use; it changes whenever either does."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def http_date(ts: float) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7), the only format a sender may generate."""
    return formatdate(ts, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP-date in any of the three formats a recipient must
    accept (RFC 9110 §5.6.7), or None when it is not one (then the condition is ignored)."""
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None:
        # asctime carries no zone; HTTP dates are always UTC (§5.6.7)
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


def _etag_list_matches(header: str, etag: str, weak: bool) -> bool:
    """Whether `etag` is in an If-Match/If-None-Match list. Weak comparison (§8.8.3.2) ignores
    the W/ prefix on either side; strong comparison never matches a weak tag."""
    if header.strip() == "*":
        return True
    for raw in header.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            if not weak:
                continue
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def is_not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, mtime: float
) -> bool:
    """True when a GET/HEAD should be answered 304 (RFC 9110 §13.1.2, §13.1.3). If-None-Match
    takes precedence: when present, If-Modified-Since is ignored (§13.2.2 step 3-4)."""
    if if_none_match is not None:
        return _etag_list_matches(if_none_match, etag, weak=True)
    if if_modified_since is not None:
        since = parse_http_date(if_modified_since)
        # HTTP dates have one-second resolution: compare whole seconds.
        return since is not None and int(mtime) <= since
    return False


def precondition_failed(
    if_match: str | None, if_unmodified_since: str | None, etag: str, mtime: float
) -> bool:
    """True when the request must be answered 412 (RFC 9110 §13.1.1, §13.1.4); If-Match takes
    precedence over If-Unmodified-Since (§13.2.2 steps 1-2)."""
    if if_match is not None:
        return not _etag_list_matches(if_match, etag, weak=False)
    if if_unmodified_since is not None:
        since = parse_http_date(if_unmodified_since)
        return since is not None and int(mtime) > since
    return False


def if_range_allows(if_range: str | None, etag: str, mtime: float) -> bool:
    """Whether a Range may be honoured given If-Range (RFC 9110 §13.1.5): an entity tag must
    match strongly, a date must equal Last-Modified exactly; otherwise send the whole file."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag
    since = parse_http_date(value)
    return since is not None and since == int(mtime)


def evaluate_range(header: str, size: int) -> tuple[int, int] | int:
    """Resolve a Range header against a representation of `size` bytes.

    Returns `(start, end)` with `end` exclusive for one satisfiable byte range,
    `RANGE_UNSATISFIABLE` when the set is syntactically valid but no range overlaps the file,
    or `RANGE_NONE` when the header is not a single `bytes` range we serve: an unknown unit or a
    malformed value must be ignored (§14.2), and we answer several ranges with the whole
    representation rather than multipart/byteranges, which §14.2 also permits.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return RANGE_NONE
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if len(parts) != 1:
        return RANGE_NONE
    first, dash, last = parts[0].partition("-")
    if not dash:
        return RANGE_NONE
    first, last = first.strip(), last.strip()
    if (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return RANGE_NONE
    if not first:
        # suffix-byte-range-spec: the last N bytes (§14.1.2); N = 0 is unsatisfiable
        n = int(last)
        if n == 0 or size == 0:
            return RANGE_UNSATISFIABLE
        return (max(0, size - n), size)
    start = int(first)
    if last:
        stop = int(last)
        if stop < start:
            # an invalid range-spec makes the whole header invalid: ignore it (§14.1.1)
            return RANGE_NONE
        end = min(stop + 1, size)
    else:
        end = size
    if start >= size:
        return RANGE_UNSATISFIABLE
    return (start, end)
