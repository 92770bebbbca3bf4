"""A tiny HTTP/1.1 client over a raw socket that keeps leftover bytes between responses, so
pipelined and keep-alive exchanges can be checked byte for byte (used by the RSGI, WSGI and
static-file tests)."""

from __future__ import annotations

import socket


class Response:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes, chunked: bool) -> None:
        self.status = status
        self.header_list = headers
        self.headers = {k: v for k, v in headers}
        self.body = body
        self.chunked = chunked
        self.chunks: list[bytes] = []

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.header_list if k == name]


class Conn:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError(f"peer closed; buffered {self.buf[:200]!r}")
        self.buf += data

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._more()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, head_only: bool = False) -> Response:
        head = self._until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
        hd = dict(headers)
        if head_only or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b"", False)
        if hd.get("transfer-encoding") == "chunked":
            chunks = []
            while True:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                data = self._exact(size + 2)[:-2]
                if size == 0:
                    break
                chunks.append(data)
            r = Response(status, headers, b"".join(chunks), True)
            r.chunks = chunks
            return r
        if "content-length" in hd:
            return Response(status, headers, self._exact(int(hd["content-length"])), False)
        # close-delimited
        while True:
            try:
                self._more()
            except ConnectionError:
                break
        body, self.buf = self.buf, b""
        return Response(status, headers, body, False)

    def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Response:
        hdrs = {"host": "test"}
        hdrs.update(headers or {})
        if body and "content-length" not in hdrs and "transfer-encoding" not in hdrs:
            hdrs["content-length"] = str(len(body))
        raw = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.send(raw.encode("latin-1") + body)
        return self.response(head_only=method == "HEAD")

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return False
