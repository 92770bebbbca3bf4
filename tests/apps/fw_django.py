"""A single-module Django project for tests/test_frameworks_rsgi_wsgi.py."""

from __future__ import annotations

from collections.abc import Iterator

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
    DATA_UPLOAD_MAX_MEMORY_SIZE=10_000_000,
    FILE_UPLOAD_MAX_MEMORY_SIZE=1_000,  # bigger uploads go through a temporary file
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello django", content_type="text/plain")


def form(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"name={request.POST['name']};q={request.GET.get('q')};path={request.path}")


def upload(request: HttpRequest) -> HttpResponse:
    f = request.FILES["upload"]
    data = f.read()
    return HttpResponse(f"{f.name}:{len(data)}:{request.POST.get('field')}:{data[:4].hex()}")


def meta(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "host": request.get_host(),
            "path": request.path,
            "path_info": request.path_info,
            "script": request.META["SCRIPT_NAME"],
            "remote": request.META["REMOTE_ADDR"],
            "agent": request.headers.get("User-Agent"),
        }
    )


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def gen() -> Iterator[bytes]:
        for i in range(4):
            yield f"row{i}\n".encode()

    return StreamingHttpResponse(gen(), content_type="text/plain")


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(open(request.GET["p"], "rb"))  # noqa: SIM115 - FileResponse closes it


urlpatterns = [
    path("", index),
    path("form", form),
    path("upload", upload),
    path("meta", meta),
    path("stream", stream),
    path("file", file),
]

application = get_wsgi_application()
