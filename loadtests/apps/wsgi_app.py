"""WSGI (PEP 3333) benchmark app (see apps/__init__.py for the routes)."""

HELLO = b"Hello, world!"
BIG = b"x" * 65536

_TEXT = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_BIG = [("Content-Type", "application/octet-stream"), ("Content-Length", "65536")]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(body))),
        ])
        return [body]
    if path == "/64k":
        start_response("200 OK", _BIG)
        return [BIG]
    start_response("200 OK", _TEXT)
    return [HELLO]
