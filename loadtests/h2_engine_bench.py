"""Micro-benchmark: microseconds per HTTP/2 request for each granian.http2 engine, in memory.

The issue-14 probe's shape: 20,000 GET requests with 5 regular headers each, 10 streams per
received chunk (the chunks are encoded beforehand by an `h2` client, so its cost is not
counted; it encodes with h2's own layers, hpack and hyperframe, as an h2 client holding
20,000 open streams gets quadratic). Per chunk the timed loop does what a server does with no
app: `feed()`, one `send_response()` (5 headers and a 13-byte body) per REQUEST event, one
`data_to_send()`. Afterwards every response is decoded frame by frame (hyperframe + hpack) and
checked: one HEADERS with the status and headers, one DATA with the body and END_STREAM, per
stream.

    .venv/bin/python loadtests/h2_engine_bench.py [--requests 20000] [--rounds 3] [--engine both]
    .venv/bin/python loadtests/h2_engine_bench.py --callgrind [--engine nghttp2]

Times are process CPU time (the machine is shared); the best of `--rounds` rounds is reported.
`--callgrind` counts instructions instead (exact, load-independent): it runs the timed loop
under valgrind twice, for 2000 and 6000 requests encoded beforehand into a file, and divides
the difference, which cancels start-up; it also prints the share spent inside libnghttp2.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time

from hpack import Decoder, Encoder
from hyperframe.frame import DataFrame, Frame, HeadersFrame, SettingsFrame, WindowUpdateFrame

from granian.http2 import REQUEST, H2Config, engine_status
from granian.http2.engine import Session, new_session

PER_CHUNK = 10
HEADERS = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"localhost:8000"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"x-request-id", b"0123456789abcdef"),
    (b"cookie", b"session=7f3a9c2b1e8d4a6f"),
]
RESPONSE = [
    (b"content-type", b"text/plain"),
    (b"content-length", b"13"),
    (b"server", b"granian"),
    (b"date", b"Tue, 01 Dec 2026 20:00:00 GMT"),
    (b"x-custom", b"1"),
]
BODY = b"Hello, world!"


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def make_chunks(requests: int) -> list[bytes]:
    enc = Encoder()
    # the client reads nothing while the loop runs: open its connection window for every body
    wu = WindowUpdateFrame(0)
    wu.window_increment = 2**31 - 1 - 65535
    chunks = [PREFACE + SettingsFrame(0).serialize() + wu.serialize()]
    sid = 1
    for _ in range(0, requests, PER_CHUNK):
        parts = []
        for _ in range(PER_CHUNK):
            f = HeadersFrame(sid, enc.encode(HEADERS), flags=["END_HEADERS", "END_STREAM"])
            parts.append(f.serialize())
            sid += 2
        chunks.append(b"".join(parts))
    return chunks


def run(engine: str, chunks: list[bytes]) -> tuple[float, bytes]:
    session: Session = new_session(H2Config(), engine=engine)
    outs = [session.data_to_send()]
    feed, respond, flush = session.feed, session.send_response, session.data_to_send
    t0 = time.process_time()
    for chunk in chunks:
        for ev in feed(chunk):
            if ev[0] == REQUEST:
                respond(ev[1], 200, RESPONSE, BODY)
        outs.append(flush())
    dt = time.process_time() - t0
    return dt, b"".join(outs)


def check(out: bytes, requests: int) -> None:
    dec = Decoder()
    heads: set[int] = set()
    bodies: set[int] = set()
    view = memoryview(out)
    pos = 0
    while pos < len(out):
        frame, length = Frame.parse_frame_header(view[pos : pos + 9])
        frame.parse_body(view[pos + 9 : pos + 9 + length])
        pos += 9 + length
        if isinstance(frame, HeadersFrame):
            headers = dec.decode(frame.data, raw=True)
            assert headers[0] == (b":status", b"200") and headers[1:] == RESPONSE, headers
            assert frame.stream_id not in heads
            heads.add(frame.stream_id)
        elif isinstance(frame, DataFrame):
            assert frame.data == BODY and "END_STREAM" in frame.flags, frame
            assert frame.stream_id in heads and frame.stream_id not in bodies
            bodies.add(frame.stream_id)
    expected = set(range(1, 2 * requests, 2))
    assert heads == bodies == expected, (len(heads), len(bodies))


def callgrind(engine: str) -> None:
    counts = {}
    shares = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (2000, 6000):
            path = os.path.join(tmp, f"chunks.{n}")
            with open(path, "wb") as f:
                pickle.dump(make_chunks(n), f)
            out = os.path.join(tmp, f"cg.{n}")
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
            cmd += [__file__, "--engine", engine, "--requests", str(n), "--load-chunks", path]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            counts[n] = int(re.search(r"Collected : (\d+)", res.stderr).group(1))  # type: ignore[union-attr]
            ann = subprocess.run(
                ["callgrind_annotate", "--inclusive=no", out], capture_output=True, text=True, check=True
            ).stdout
            shares[n] = sum(
                int(m.group(1).replace(",", "")) for m in re.finditer(r"^\s*([\d,]+) .*libnghttp2", ann, re.M)
            )
    per = (counts[6000] - counts[2000]) / 4000
    ng = (shares[6000] - shares[2000]) / 4000
    print(f"{engine}: {per:,.0f} instructions/request, {ng:,.0f} of them in libnghttp2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine", choices=("both", "nghttp2", "h2"), default="both")
    ap.add_argument("--callgrind", action="store_true", help="count instructions under valgrind")
    ap.add_argument("--load-chunks", help=argparse.SUPPRESS)  # callgrind's inner runs
    args = ap.parse_args()
    ok, detail = engine_status()
    engines = ["nghttp2", "h2"] if args.engine == "both" else [args.engine]
    if "nghttp2" in engines and not ok:
        print(f"nghttp2: skipped ({detail})")
        engines.remove("nghttp2")
    if args.load_chunks:
        with open(args.load_chunks, "rb") as f:
            run(engines[0], pickle.load(f))
        return
    if args.callgrind:
        for engine in engines:
            callgrind(engine)
        return
    for engine in engines:
        best = float("inf")
        for _ in range(args.rounds):
            chunks = make_chunks(args.requests)
            dt, out = run(engine, chunks)
            check(out, args.requests)
            best = min(best, dt)
        label = f"nghttp2 {detail}" if engine == "nghttp2" else "h2 (pure Python)"
        print(f"{label:<24} {best / args.requests * 1e6:7.2f} us/request (best of {args.rounds})")


if __name__ == "__main__":
    main()
