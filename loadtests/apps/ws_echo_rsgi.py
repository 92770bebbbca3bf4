"""RSGI WebSocket echo app for loadtests/autobahn.py and loadtests/ws_bench.py
(/work/shared/docs/RSGI.md, WebSocket protocol object).

Message kinds: 0 closed by the client, 1 bytes, 2 str; each message goes back
with the same type. Plain HTTP answers 200 `Hello, world!`, the body run.py's
wait_ready expects on `/`.
"""


async def app(scope, protocol):
    if scope.proto == "ws":
        transport = await protocol.accept()
        send_bytes = transport.send_bytes
        send_str = transport.send_str
        receive = transport.receive
        while True:
            msg = await receive()
            kind = msg.kind
            if kind == 2:
                await send_str(msg.data)
            elif kind == 1:
                await send_bytes(msg.data)
            else:  # 0: the client closed
                return
    elif scope.proto == "http":
        protocol.response_str(200, [("content-type", "text/plain")], "Hello, world!")
