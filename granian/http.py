"""Granian 2.x's grouped HTTP settings objects, accepted by ``Granian(http1_settings=...,
http2_settings=...)``. Their defaults are the CLI defaults of the matching ``--http1-*`` and
``--http2-*`` options (CLI.md section 1).

The name is Granian's public API (API.md: ``granian.http.HTTP1Settings``), so it stays next to
``granian.http1``, the sans-I/O HTTP/1.1 core, which has nothing to do with it."""

from __future__ import annotations

from dataclasses import dataclass

from .constants import HTTP1_BUFFER_SIZE


@dataclass
class HTTP1Settings:
    header_read_timeout: int = 30000  # ms to receive a whole request head (slowloris guard)
    keep_alive: bool = True
    max_buffer_size: int = HTTP1_BUFFER_SIZE
    pipeline_flush: bool = False


@dataclass
class HTTP2Settings:
    adaptive_window: bool = False
    initial_connection_window_size: int = 1048576
    initial_stream_window_size: int = 1048576
    keep_alive_interval: int | None = None  # ms between PINGs; None = no PINGs
    keep_alive_timeout: int = 20  # seconds to wait for a PING ack
    max_concurrent_streams: int = 200
    max_frame_size: int = 16384
    max_headers_size: int = 16777216
    max_send_buffer_size: int = 409600
