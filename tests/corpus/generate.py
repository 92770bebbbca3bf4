"""Writes tests/corpus/{valid,invalid}/NNN.http and NNN.json from the cases listed below.

The expected results are written here by hand from RFC 9110/9112 (and our documented choices in
granian/http1/limits.py), never computed by a parser: each case is built from its parts (request
line, header lines, raw body) and the JSON says what a correct parser must return. Run
`python tests/corpus/generate.py` after editing; the test suite reads only the files.

JSON strings hold bytes decoded as latin-1. Valid cases:
  {"method", "target", "minor", "headers": [[name lower-cased, value]], "content_length",
   "flags": [flag names], "end": head length, "body": decoded body, "tail": bytes after the body,
   "limits": optional H1Limits overrides}
Invalid cases: {"status", "error": limits.E_* name, "stage": "head" | "body", "limits"?}
"""

from __future__ import annotations

import json
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
CRLF = "\r\n"

VALID: list[dict[str, object]] = []
INVALID: list[dict[str, object]] = []


def req(line: str, headers: list[tuple[str, str]] | list[str], pre: str = "") -> str:
    """Build a head: `headers` are raw field lines (str) or (name, value) pairs joined by ': '."""
    lines = [h if isinstance(h, str) else f"{h[0]}: {h[1]}" for h in headers]
    return pre + line + CRLF + "".join(x + CRLF for x in lines) + CRLF


def valid(
    head: str,
    method: str,
    target: str,
    minor: int,
    headers: list[tuple[str, str]],
    *,
    cl: int = -1,
    flags: tuple[str, ...] = (),
    raw_body: str = "",
    body: str = "",
    tail: str = "",
    limits: dict[str, int] | None = None,
) -> None:
    VALID.append(
        {
            "raw": head + raw_body + tail,
            "method": method,
            "target": target,
            "minor": minor,
            "headers": [list(h) for h in headers],
            "content_length": cl,
            "flags": list(flags),
            "end": len(head),
            "body": body,
            "tail": tail,
            **({"limits": limits} if limits else {}),
        }
    )


def invalid(
    raw: str, status: int, error: str, *, stage: str = "head", limits: dict[str, int] | None = None
) -> None:
    INVALID.append(
        {
            "raw": raw,
            "status": status,
            "error": error,
            "stage": stage,
            **({"limits": limits} if limits else {}),
        }
    )


def lower(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(n.lower(), v) for n, v in headers]


# ---------------------------------------------------------------------------------------------
# valid heads
H = [("Host", "example.com")]
valid(req("GET / HTTP/1.1", H), "GET", "/", 1, lower(H))
valid(req("GET / HTTP/1.0", []), "GET", "/", 0, [])
BROWSER = [
    ("Host", "www.example.org"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Referer", "https://www.example.org/index.html"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=7f3a9c2b1e; theme=dark; _ga=GA1.2.1234567890.1700000000"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-User", "?1"),
    ("Priority", "u=0, i"),
]
valid(
    req("GET /articles/2024/11/some-article?ref=home&utm_source=x HTTP/1.1", BROWSER),
    "GET",
    "/articles/2024/11/some-article?ref=home&utm_source=x",
    1,
    lower(BROWSER),
    flags=("F_CONN_KEEPALIVE",),
)
h = [("Host", "a"), ("Content-Length", "5")]
valid(req("POST /form HTTP/1.1", h), "POST", "/form", 1, lower(h), cl=5, raw_body="hello", body="hello")
h = [("Host", "a"), ("Transfer-Encoding", "chunked")]
valid(
    req("POST /up HTTP/1.1", h),
    "POST",
    "/up",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    body="hello world",
)
valid(
    req("POST /up HTTP/1.1", h),
    "POST",
    "/up",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body='5;name=value;flag\r\nhello\r\n3;q="a;b,c"\r\nabc\r\n0;last\r\n\r\n',
    body="helloabc",
)
valid(
    req("POST /up HTTP/1.1", h),
    "POST",
    "/up",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="4\r\nwiki\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\nX-Checksum: abc\r\n\r\n",
    body="wiki",
)
valid(
    req("POST /up HTTP/1.1", h),
    "POST",
    "/up",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="A\r\n0123456789\r\n000b\r\nabcdefghijk\r\n00\r\n\r\n",
    body="0123456789abcdefghijk",
)
h0 = [("Host", "a"), ("Content-Length", "0")]
valid(req("POST / HTTP/1.1", h0), "POST", "/", 1, lower(h0), cl=0)
h = [("Host", "a"), ("Content-Length", "3"), ("Content-Length", "3")]
valid(req("PUT /r HTTP/1.1", h), "PUT", "/r", 1, lower(h), cl=3, raw_body="abc", body="abc")
h = [("Host", "a"), ("Connection", "close")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h), flags=("F_CONN_CLOSE",))
h = [("Connection", "Keep-Alive")]
valid(req("GET / HTTP/1.0", h), "GET", "/", 0, lower(h), flags=("F_CONN_KEEPALIVE",))
h = [
    ("Host", "a"),
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]
valid(req("GET /chat HTTP/1.1", h), "GET", "/chat", 1, lower(h), flags=("F_UPGRADE",))
h = [("Host", "a"), ("Connection", "upgrade")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
h = [("Host", "a"), ("Upgrade", "h2c")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
h = [("Host", "a"), ("Content-Length", "2"), ("Expect", "100-continue")]
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    lower(h),
    cl=2,
    flags=("F_EXPECT_CONTINUE",),
    raw_body="ok",
    body="ok",
)
h = [("Host", "a"), ("Expect", "100-CONTINUE")]
valid(req("POST / HTTP/1.1", h), "POST", "/", 1, lower(h), flags=("F_EXPECT_CONTINUE",))
h = [("Host", "a"), ("Expect", "200-ok")]
valid(req("POST / HTTP/1.1", h), "POST", "/", 1, lower(h))
valid(req("GET / HTTP/1.1", H, pre="\r\n"), "GET", "/", 1, lower(H))
valid(req("GET / HTTP/1.1", H, pre="\r\n\r\n"), "GET", "/", 1, lower(H))
valid(req("GET / HTTP/1.1", ["X-Pad:   value   "]), "GET", "/", 1, [("x-pad", "value")])
valid(req("GET / HTTP/1.1", ["X-Tab:\tvalue\t"]), "GET", "/", 1, [("x-tab", "value")])
valid(req("GET / HTTP/1.1", ["X-Empty:", "X-Blank:  "]), "GET", "/", 1, [("x-empty", ""), ("x-blank", "")])
valid(req("GET / HTTP/1.1", ["X-Inner: a  b\t c"]), "GET", "/", 1, [("x-inner", "a  b\t c")])
valid(req("GET / HTTP/1.1", ["X-Latin: caf\xe9 \xff\x80"]), "GET", "/", 1, [("x-latin", "caf\xe9 \xff\x80")])
valid(
    req("GET / HTTP/1.1", ["!#$%&'*+-.^_`|~09azAZ: token"]),
    "GET",
    "/",
    1,
    [("!#$%&'*+-.^_`|~09azaz", "token")],
)
valid(
    req("GET / HTTP/1.1", ["CONTENT-TYPE: text/plain", "X-MiXeD-CaSe: Keep-Case"]),
    "GET",
    "/",
    1,
    [("content-type", "text/plain"), ("x-mixed-case", "Keep-Case")],
)
h = [("Host", "a"), ("Accept", "a/b"), ("X-Dup", "1"), ("accept", "c/d"), ("X-Dup", "2")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
valid(req("GET http://example.com/x?y=1 HTTP/1.1", H), "GET", "http://example.com/x?y=1", 1, lower(H))
h = [("Host", "example.com:443")]
valid(req("CONNECT example.com:443 HTTP/1.1", h), "CONNECT", "example.com:443", 1, lower(h))
valid(req("OPTIONS * HTTP/1.1", H), "OPTIONS", "*", 1, lower(H))
valid(
    req("GET /p%20a/th;p=1?q=a%2Fb&r=[x]#frag HTTP/1.1", H),
    "GET",
    "/p%20a/th;p=1?q=a%2Fb&r=[x]#frag",
    1,
    lower(H),
)
valid(req("GET /caf\xe9/\xff HTTP/1.1", H), "GET", "/caf\xe9/\xff", 1, lower(H))
valid(req("PURGE /cache HTTP/1.1", H), "PURGE", "/cache", 1, lower(H))
valid(req("M-SEARCH * HTTP/1.1", H), "M-SEARCH", "*", 1, lower(H))
valid(req("get / HTTP/1.1", H), "get", "/", 1, lower(H))
second = req("GET /second HTTP/1.1", H)
valid(req("GET /first HTTP/1.1", H), "GET", "/first", 1, lower(H), tail=second)
h = [("Host", "a"), ("Transfer-Encoding", "Chunked")]
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="1\r\nx\r\n0\r\n\r\n",
    body="x",
)
h = [("Host", "a"), ("Transfer-Encoding", " , chunked ,")]
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    [("host", "a"), ("transfer-encoding", ", chunked ,")],
    flags=("F_CHUNKED",),
    raw_body="0\r\n\r\n",
)
h = [("Host", "a"), ("Connection", "close, keep-alive")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h), flags=("F_CONN_CLOSE", "F_CONN_KEEPALIVE"))
h = [("Host", "a"), ("Connection", "foo,  CLOSE ,bar")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h), flags=("F_CONN_CLOSE",))
h = [("Host", "localhost:8000")]
valid(req("GET /health HTTP/1.1", h), "GET", "/health", 1, lower(h))
h = [("Host", "a"), ("X-Big", "v" * 4000)]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
h = [(f"X-H{i}", str(i)) for i in range(100)]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
t = "/" + "a" * 8189
valid(req(f"GET {t} HTTP/1.1", H), "GET", t, 1, lower(H))
h = [("Host", "a"), ("Content-Length", "9223372036854775807")]
valid(req("POST / HTTP/1.1", h), "POST", "/", 1, lower(h), cl=9223372036854775807)
h = [("Host", "a"), ("Content-Length", "007")]
valid(req("POST / HTTP/1.1", h), "POST", "/", 1, lower(h), cl=7, raw_body="1234567", body="1234567")
valid(req("HEAD /index.html HTTP/1.1", H), "HEAD", "/index.html", 1, lower(H))
valid(req("DELETE /items/42 HTTP/1.1", H), "DELETE", "/items/42", 1, lower(H))
h = [("Host", "a"), ("Content-Type", "application/json-patch+json"), ("Content-Length", "2")]
valid(req("PATCH /items/42 HTTP/1.1", h), "PATCH", "/items/42", 1, lower(h), cl=2, raw_body="[]", body="[]")
h = [("Host", "a"), ("Transfer-Encoding", "chunked")]
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="3\r\nabc\r\n0;ext=1;x\r\nA: 1\r\nB-C: two words\r\nD:\r\n\r\n",
    body="abc",
)
valid(req("GET / HTTP/1.1", ["X-Time: 12:30:45"]), "GET", "/", 1, [("x-time", "12:30:45")])
valid(
    req("GET / HTTP/1.1", ['Authorization: Digest username="a", realm="b=c"']),
    "GET",
    "/",
    1,
    [("authorization", 'Digest username="a", realm="b=c"')],
)
h = [("Host", "a"), ("Keep-Alive", "timeout=5, max=100")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
valid(
    req("POST / HTTP/1.1", ["Host: a", "Content-Length:   12  "]),
    "POST",
    "/",
    1,
    [("host", "a"), ("content-length", "12")],
    cl=12,
    raw_body="twelve bytes",
    body="twelve bytes",
)
valid(
    req("POST / HTTP/1.1", ["Host: a", "Expect:  100-continue "]),
    "POST",
    "/",
    1,
    [("host", "a"), ("expect", "100-continue")],
    flags=("F_EXPECT_CONTINUE",),
)
valid(req("GET / HTTP/1.1", ["Host:"]), "GET", "/", 1, [("host", "")])
h = [("Host", "a"), ("Connection", "Close")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h), flags=("F_CONN_CLOSE",))
h = [("Host", "a"), ("Content-Length", "4")]
valid(
    req("POST /a HTTP/1.1", h),
    "POST",
    "/a",
    1,
    lower(h),
    cl=4,
    raw_body="data",
    body="data",
    tail=req("GET /b HTTP/1.1", H),
)
h = [("Host", "a"), ("Transfer-Encoding", "chunked")]
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="8\r\nab\r\n\r\ncd\r\n0\r\n\r\n",
    body="ab\r\n\r\ncd",
    tail=req("GET /next HTTP/1.1", H),
)
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="2 ;a=b\r\nhi\r\n2\t; c\r\nyo\r\n0\r\n\r\n",
    body="hiyo",
)
h = [("Content-Length", "3")]
valid(req("POST / HTTP/1.0", h), "POST", "/", 0, lower(h), cl=3, raw_body="abc", body="abc")
h = [("Host", "a"), ("X-Forwarded-For", "203.0.113.7, 198.51.100.2"), ("X-Forwarded-Proto", "https")]
valid(req("GET / HTTP/1.1", h), "GET", "/", 1, lower(h))
valid(req("GET / HTTP/1.1", ["X-123: digits", "1: one"]), "GET", "/", 1, [("x-123", "digits"), ("1", "one")])
m = "A" * 64
valid(req(f"{m} / HTTP/1.1", H), m, "/", 1, lower(H))
valid(
    req("GET / HTTP/1.1", H),
    "GET",
    "/",
    1,
    lower(H),
    limits={"max_head": len(req("GET / HTTP/1.1", H))},
)
valid(req("GET /abc HTTP/1.1", H), "GET", "/abc", 1, lower(H), limits={"max_target": 4})
valid(req("GET / HTTP/1.1", []), "GET", "/", 1, [], limits={"max_headers": 0})
h = [("Host", "a"), ("Transfer-Encoding", "chunked")]
valid(
    req("POST / HTTP/1.1", h),
    "POST",
    "/",
    1,
    lower(h),
    flags=("F_CHUNKED",),
    raw_body="1000\r\n" + "z" * 4096 + "\r\n0\r\n\r\n",
    body="z" * 4096,
)

# ---------------------------------------------------------------------------------------------
# invalid heads
G = "GET / HTTP/1.1\r\n"
P = "POST / HTTP/1.1\r\nHost: a\r\n"
invalid(P + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "E_CL_AND_TE")
invalid(P + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400, "E_CL_AND_TE")
invalid(P + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "E_CONTENT_LENGTH_MISMATCH")
invalid(P + "Content-Length: 5, 5\r\n\r\nhello", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length: -1\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length: +5\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length: 5a\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length:\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length: 9223372036854775808\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length: 99999999999999999999999999\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Content-Length: 0x10\r\n\r\n", 400, "E_CONTENT_LENGTH")
invalid(P + "Transfer-Encoding: chunked, identity\r\n\r\n", 400, "E_TE_NOT_CHUNKED")
invalid(P + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, "E_TE_NOT_CHUNKED")
invalid(P + "Transfer-Encoding: identity\r\n\r\n", 400, "E_TE_NOT_CHUNKED")
invalid(P + "Transfer-Encoding: gzip\r\n\r\n", 400, "E_TE_NOT_CHUNKED")
invalid(P + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "E_TE_UNKNOWN")
invalid(P + "Transfer-Encoding: x-custom, chunked\r\n\r\n0\r\n\r\n", 501, "E_TE_UNKNOWN")
invalid(P + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "E_TE_NOT_CHUNKED")
invalid(P + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "E_TE_NOT_CHUNKED")
invalid(P + "Transfer-Encoding:\r\n\r\n", 400, "E_TE_SYNTAX")
invalid(P + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400, "E_TE_SYNTAX")
invalid(P + 'Transfer-Encoding: "chunked"\r\n\r\n', 400, "E_TE_SYNTAX")
invalid("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "E_TE_HTTP10")
invalid(P + "Transfer-Encoding: \x0bchunked\r\n\r\n", 400, "E_HEADER_VALUE")
invalid(G + "Host : a\r\n\r\n", 400, "E_WS_BEFORE_COLON")
invalid(G + "Host\t: a\r\n\r\n", 400, "E_WS_BEFORE_COLON")
invalid(P + "Transfer-Encoding : chunked\r\n\r\n", 400, "E_WS_BEFORE_COLON")
invalid(G + "Host: a\n\r\n", 400, "E_EOL")
invalid("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "E_EOL")
invalid(G + "Host: a\nX: b\n\n", 400, "E_EOL")
invalid(G + "X: a\rb\r\n\r\n", 400, "E_EOL")
invalid("GET /\r HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid("GET / HTTP/1.1\r\r\n\r\n", 400, "E_EOL")
invalid(G + "Host: a\r\n\r\r", 400, "E_EOL")
invalid(G + "X: a\r\n b\r\n\r\n", 400, "E_OBS_FOLD")
invalid(G + "X: a\r\n\tb\r\n\r\n", 400, "E_OBS_FOLD")
invalid(G + " Host: a\r\n\r\n", 400, "E_OBS_FOLD")
invalid(G + "X: a\x00b\r\n\r\n", 400, "E_HEADER_VALUE")
invalid(G + "X\x00: b\r\n\r\n", 400, "E_HEADER_NAME")
invalid(G + "X: a\x7fb\r\n\r\n", 400, "E_HEADER_VALUE")
invalid(G + "X: a\x1bb\r\n\r\n", 400, "E_HEADER_VALUE")
invalid("GET /a\x00b HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid("GET /a b HTTP/1.1\r\n\r\n", 400, "E_VERSION")
invalid("GET /a\x01b HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid("GET /a\x7fb HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid("GET /a\tb HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid("GET  HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid("GET  / HTTP/1.1\r\n\r\n", 400, "E_TARGET")
invalid(" GET / HTTP/1.1\r\n\r\n", 400, "E_METHOD")
invalid("GE(T / HTTP/1.1\r\n\r\n", 400, "E_METHOD")
invalid("GET\t/ HTTP/1.1\r\n\r\n", 400, "E_METHOD")
invalid("G\xc9T / HTTP/1.1\r\n\r\n", 400, "E_METHOD")
invalid("GET / HTTP/2.0\r\n\r\n", 505, "E_VERSION_UNSUPPORTED")
invalid("GET / HTTP/1.2\r\n\r\n", 505, "E_VERSION_UNSUPPORTED")
invalid("GET / HTTP/0.9\r\n\r\n", 505, "E_VERSION_UNSUPPORTED")
invalid("GET / HTTP/3.0\r\n\r\n", 505, "E_VERSION_UNSUPPORTED")
invalid("GET / HTTP/1.1x\r\n\r\n", 400, "E_VERSION")
invalid("GET / http/1.1\r\n\r\n", 400, "E_VERSION")
invalid("GET / HTTP/11\r\n\r\n", 400, "E_VERSION")
invalid("GET / HTTP/1.1 \r\n\r\n", 400, "E_VERSION")
invalid("GET /\r\n\r\n", 400, "E_TARGET")
invalid("GET / \r\n\r\n", 400, "E_VERSION")
invalid(G + "Host\r\n\r\n", 400, "E_NO_COLON")
invalid(G + ": value\r\n\r\n", 400, "E_HEADER_NAME")
invalid(G + "X(y): z\r\n\r\n", 400, "E_HEADER_NAME")
invalid(G + "X\xe9: z\r\n\r\n", 400, "E_HEADER_NAME")
invalid(G + "X/Y: z\r\n\r\n", 400, "E_HEADER_NAME")
invalid("GET /" + "a" * 8190 + " HTTP/1.1\r\n\r\n", 414, "E_TARGET_TOO_LONG")
invalid("GET /abcde HTTP/1.1\r\n\r\n", 414, "E_TARGET_TOO_LONG", limits={"max_target": 5})
invalid(G + "X: " + "v" * 200 + "\r\n\r\n", 431, "E_HEAD_TOO_LARGE", limits={"max_head": 128})
invalid(G + "Host: a\r\n\r\n", 431, "E_HEAD_TOO_LARGE", limits={"max_head": 20})
invalid(G + "".join(f"X-{i}: {i}\r\n" for i in range(101)) + "\r\n", 431, "E_TOO_MANY_HEADERS")
invalid(G + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", 431, "E_TOO_MANY_HEADERS", limits={"max_headers": 2})
invalid(G + "Host: a\r\nHost: b\r\n\r\n", 400, "E_DUP_HOST")
invalid(G + "host: a\r\nHOST: a\r\n\r\n", 400, "E_DUP_HOST")
invalid("\nGET / HTTP/1.1\r\n\r\n", 400, "E_EOL")
invalid("\r\rGET / HTTP/1.1\r\n\r\n", 400, "E_EOL")
# chunked bodies behind a valid head
C = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
invalid(C + "10000000000000000\r\n", 400, "E_CHUNK_OVERFLOW", stage="body")
invalid(C + "ffffffffffffffffffff\r\n", 400, "E_CHUNK_OVERFLOW", stage="body")
invalid(C + "z\r\n", 400, "E_CHUNK_SIZE", stage="body")
invalid(C + "-1\r\n", 400, "E_CHUNK_SIZE", stage="body")
invalid(C + "0x5\r\nhello\r\n0\r\n\r\n", 400, "E_CHUNK_SIZE", stage="body")
invalid(C + "\r\n", 400, "E_CHUNK_SIZE", stage="body")
invalid(C + "5\r\nhelloXX0\r\n\r\n", 400, "E_CHUNK_EOL", stage="body")
invalid(C + "5\nhello\r\n0\r\n\r\n", 400, "E_CHUNK_EOL", stage="body")
invalid(C + "5\r\nhello\n0\r\n\r\n", 400, "E_CHUNK_EOL", stage="body")
invalid(C + "5\r\nhello\r\n0\r\n\n", 400, "E_CHUNK_EOL", stage="body")
invalid(C + "5;a\x00b\r\nhello\r\n0\r\n\r\n", 400, "E_CHUNK_EXT", stage="body")
invalid(C + "5 \r\nhello\r\n0\r\n\r\n", 400, "E_CHUNK_EXT", stage="body")
invalid(C + "5 x\r\nhello\r\n0\r\n\r\n", 400, "E_CHUNK_EXT", stage="body")
invalid(C + "0\r\nX : y\r\n\r\n", 400, "E_TRAILER", stage="body")
invalid(C + "0\r\nX: y\r\n folded\r\n\r\n", 400, "E_TRAILER", stage="body")
invalid(C + "0\r\nX: y\x00\r\n\r\n", 400, "E_TRAILER", stage="body")
invalid(C + "1;" + "e" * 16400 + "\r\nx\r\n0\r\n\r\n", 400, "E_CHUNK_LINE_TOO_LONG", stage="body")
invalid(C + "0\r\n" + "X: " + "t" * 16400 + "\r\n\r\n", 431, "E_TRAILER_TOO_LARGE", stage="body")


def main() -> None:
    for kind, cases in (("valid", VALID), ("invalid", INVALID)):
        folder = HERE / kind
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        for i, case in enumerate(cases, 1):
            case = dict(case)
            raw = str(case.pop("raw")).encode("latin-1")
            (folder / f"{i:03d}.http").write_bytes(raw)
            (folder / f"{i:03d}.json").write_text(json.dumps(case, indent=1, ensure_ascii=True) + "\n")
    print(f"{len(VALID)} valid, {len(INVALID)} invalid")


if __name__ == "__main__":
    main()
