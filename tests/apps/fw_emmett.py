from emmett import App, request, response
from emmett.tools import service

app = App(__name__)
app.config.handle_static = False


@app.route("/")
async def index():
    response.content_type = "text/plain"
    return "hello emmett"


@app.route("/params", methods=["post", "get"], output="str")
async def params():
    body = await request.body_params
    return f"q={request.query_params.q};name={body.name}"


@app.route("/json", methods=["post"])
@service.json
async def js():
    data = await request.body_params
    return {"got": data, "path": request.path, "method": request.method, "host": request.host}


@app.route("/upload", methods=["post"], output="str")
async def upload():
    files = await request.files
    f = files.upload
    data = f.read()
    return f"{f.filename}:{len(data)}"


@app.route("/stream")
async def stream():
    async def gen():
        for i in range(3):
            yield f"part{i};"

    return await response.stream(gen())
