"""HTTP/2 session parameters: the `--http2-*` options plus the flood guards, checked once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# RFC 9113 section 6.5.2: SETTINGS_INITIAL_WINDOW_SIZE and every window stay <= 2^31-1;
# SETTINGS_MAX_FRAME_SIZE lies in [2^14, 2^24-1]; a SETTINGS value is 32 bits.
MAX_WINDOW = 2**31 - 1
MIN_FRAME = 2**14
MAX_FRAME = 2**24 - 1
MAX_SETTING = 2**32 - 1
DEFAULT_WINDOW = 65535  # section 6.9.2: every window starts there


@dataclass(frozen=True, slots=True)
class H2Config:
    """One connection's parameters. The first six mirror CLI.md's `--http2-*` defaults."""

    max_concurrent_streams: int = 200
    initial_stream_window_size: int = 1048576
    initial_connection_window_size: int = 1048576
    max_frame_size: int = 16384
    max_headers_size: int = 16777216
    max_send_buffer_size: int = 409600
    # 0 leaves SETTINGS_HEADER_TABLE_SIZE at its 4096 default (RFC 7541 section 4.2).
    header_table_size: int = 0
    # Rapid reset (CVE-2023-44487): a token bucket on received RST_STREAM frames, nghttp2's own
    # defaults (burst 1000, 33 per second); past it the connection gets GOAWAY.
    reset_burst: int = 1000
    reset_rate: int = 33
    # CONTINUATION flood (CVE-2024-27316): CONTINUATION frames per header block, nghttp2's
    # default of 8. The h2 fallback has its own fixed backlog of 64.
    max_continuations: int = 8
    # Empty-frame flood (CVE-2019-9518): consecutive empty DATA frames without END_STREAM.
    max_empty_frames: int = 100
    # SETTINGS flood (CVE-2019-9515) and PING flood (CVE-2019-9512): entries per SETTINGS frame,
    # and acks queued before the peer is deemed not to read (nghttp2's defaults, 32 and 1000).
    max_settings: int = 32
    max_outbound_ack: int = 1000

    def __post_init__(self) -> None:
        def check(name: str, lo: int, hi: int) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"H2Config.{name}={value!r}: must be an int in [{lo}, {hi}]")

        check("max_concurrent_streams", 1, MAX_SETTING)
        check("initial_stream_window_size", 0, MAX_WINDOW)
        check("initial_connection_window_size", DEFAULT_WINDOW, MAX_WINDOW)
        check("max_frame_size", MIN_FRAME, MAX_FRAME)
        check("max_headers_size", 1, MAX_SETTING)
        check("max_send_buffer_size", 1, MAX_SETTING)
        check("header_table_size", 0, MAX_SETTING)
        for name in ("reset_burst", "reset_rate", "max_continuations", "max_empty_frames"):
            check(name, 0, MAX_SETTING)
        check("max_settings", 0, MAX_SETTING)
        check("max_outbound_ack", 0, MAX_SETTING)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: int) -> H2Config:
        """From a `Settings` (or the worker's snapshot): the `http2_*` fields by name."""
        values: dict[str, int] = {
            "max_concurrent_streams": settings.http2_max_concurrent_streams,
            "initial_stream_window_size": settings.http2_initial_stream_window_size,
            "initial_connection_window_size": settings.http2_initial_connection_window_size,
            "max_frame_size": settings.http2_max_frame_size,
            # a SETTINGS value is 32 bits: a larger option means "no limit we can state"
            "max_headers_size": min(settings.http2_max_headers_size, MAX_SETTING),
            "max_send_buffer_size": min(settings.http2_max_send_buffer_size, MAX_SETTING),
        }
        values.update(overrides)
        return cls(**values)
