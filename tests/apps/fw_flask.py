"""A Flask app for tests/test_frameworks_rsgi_wsgi.py: forms, uploads, JSON, streaming."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, jsonify, request, send_file

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "hello flask"


@app.post("/form")
def form() -> str:
    return f"name={request.form['name']};q={request.args.get('q')}"


@app.post("/upload")
def upload() -> str:
    f = request.files["upload"]
    data = f.read()
    return f"{f.filename}:{len(data)}:{request.form.get('field')}:{data[:4].hex()}"


@app.post("/json")
def js() -> Response:
    return jsonify(got=request.get_json(), path=request.path, root=request.script_root)


@app.get("/stream")
def stream() -> Response:
    def gen() -> Iterator[str]:
        for i in range(4):
            yield f"row{i}\n"

    return Response(gen(), mimetype="text/plain")


@app.get("/file")
def file() -> Response:
    return send_file(request.args["p"], mimetype="application/octet-stream")
