"""Reference row for loadtests/ws_bench.py: picows's own echo server (a Cython WebSocket
library, the bench's client too), one process, uvloop when importable.

It shows the client's ceiling on the same pinned CPUs: a server row close to this one
means the bench measured the client, not the server. Run as
`python ws_echo_picows.py PORT`; a request without an Upgrade header answers 200
`Hello, world!` (what run.py's wait_ready expects on `/`).
"""

import asyncio
import sys

from picows import (
    WSListener,
    WSMsgType,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)


class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        mt = frame.msg_type
        if mt == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif mt in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            # Frame by frame, FIN and opcode kept: the echo of a fragmented message is
            # the same fragments.
            transport.send(mt, frame.get_payload_as_memoryview(), frame.fin)


def route(request):
    if request.headers.get("upgrade", "").lower() != "websocket":
        return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"Hello, world!"), None)
    return Echo()


async def main(port):
    server = await ws_create_server(route, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
