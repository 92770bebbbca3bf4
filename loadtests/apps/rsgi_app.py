"""RSGI 1.6 benchmark app (see apps/__init__.py for the routes and
/work/shared/docs/RSGI.md for the protocol)."""

import os

HELLO = "Hello, world!"
BIG = b"x" * 65536
FILE = os.environ.get("LOADTEST_FILE", "")

_TEXT = [("content-type", "text/plain")]
_BIN = [("content-type", "application/octet-stream")]


async def app(scope, proto):
    if scope.proto != "http":
        return
    path = scope.path
    if path == "/echo":
        body = await proto()
        proto.response_bytes(200, _BIN, body)
    elif path == "/64k":
        proto.response_bytes(200, _BIN, BIG)
    elif path == "/file":
        proto.response_file(200, _BIN, FILE)
    else:
        proto.response_str(200, _TEXT, HELLO)
