"""The HTTP endpoints (FastAPI): search, item images, info, health, readiness, metrics, page.

Every answer other than 200 is the JSON error of ``errors.py``, FastAPI's own validation and
404 answers included. Responses are strict JSON (``data/strict_json``): a number that is not
finite is written as ``null`` where the record allows it, never as ``NaN``.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from sketchsearch.data import strict_json
from sketchsearch.runtime.output.retrieve_json import EngineFacts, retrieve_record
from sketchsearch.runtime.service.batcher import SearchReply, SearchRequest
from sketchsearch.runtime.service.errors import (
    ApiError,
    UploadStalled,
    UploadTooLarge,
    error_body,
)
from sketchsearch.runtime.service.item_images import LocatedItem, image_url
from sketchsearch.runtime.service.metrics import CONTENT_TYPE
from sketchsearch.runtime.service.service import MAX_K, Service

STATIC = Path(__file__).parent / "static"
INFO_SCHEMA = "sketchsearch.info/1"
RAW_IMAGE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "application/octet-stream",
)
UPLOAD_NAME_CHARS = 120

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The query image: its raw bytes, or a form with one file field `image`.",
        "content": {
            **{
                kind: {"schema": {"type": "string", "format": "binary"}} for kind in RAW_IMAGE_TYPES
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                    "required": ["image"],
                }
            },
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description}
    for status, description in (
        (400, "bad parameters"),
        (401, "missing or wrong bearer key"),
        (408, "the upload stalled"),
        (413, "upload over the size limit"),
        (415, "not an image content type"),
        (422, "the image cannot be decoded, or is a decompression bomb"),
        (503, "queue full (Retry-After), not ready, or the engine failed"),
    )
}
_IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description}
    for status, description in (
        (400, "bad parameters"),
        (401, "missing or wrong bearer key"),
        (404, "no such item, or `v` names content the item no longer has"),
        (500, "the gallery's image file is unreadable"),
    )
}


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    text = strict_json.dumps(body)
    return Response(text, status, headers, media_type="application/json")


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="sketchsearch",
        version="1",
        summary="Sketch-based image retrieval: a sketch finds photos, a photo finds sketches.",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN; ours work offline
        redoc_url=None,
    )
    _add_error_handlers(app)

    @app.post("/v1/search", responses=_ERRORS, openapi_extra=_IMAGE_BODY)
    async def search(
        request: Request,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="Results to return.")] = 10,
        min_score: Annotated[
            float | None, Query(description="Below it a result is 'no confident match'.")
        ] = None,
        label: Annotated[
            list[str] | None, Query(description="Only items with these labels (repeatable).")
        ] = None,
    ) -> Response:
        """Search the gallery with one image (a sketch or a photo).

        The answer is one `sketchsearch.retrieve/1` object, as `retrieve --json` prints."""
        if min_score is not None and not math.isfinite(min_score):
            raise ApiError(400, f"min_score={min_score}: expected a finite number")
        service.admit()
        try:
            reply = await _answer(service, request, k, label, min_score)
        finally:
            service.release()
        return json_response(_search_record(service, reply, k))

    @app.get("/v1/items/{item_id}/image", responses=_IMAGE_ERRORS)
    async def item_image(
        request: Request,
        item_id: Annotated[int, PathParam(ge=0, le=2**63 - 1)],
        size: Annotated[str, Query(pattern="^(thumbnail|large|original)$")] = "thumbnail",
        v: Annotated[
            str | None,
            Query(pattern="^[0-9a-fA-F]{16,64}$", description="The content version a search gave."),
        ] = None,
    ) -> Response:
        """A result's image by its item id: a JPEG of at most 256 px (thumbnail) or 1024 px
        (large), or the original file. With `v`, an id that now names other content is 404."""
        return await _item_image(service, request, item_id, size, v)

    @app.get("/v1/info")
    def info() -> Response:
        """The model, the gallery answering now, the threshold, batching and limits."""
        return json_response(_info_record(service))

    # async: answered on the event loop, never waiting for a worker thread behind searches
    @app.get("/healthz")
    async def healthz() -> Response:
        """The process is alive (no key needed)."""
        return json_response({"status": "alive"})

    @app.get("/readyz", responses={503: {"description": "still warming up"}})
    async def readyz() -> Response:
        """The model and gallery are loaded and warmed up (no key needed)."""
        service.check_engine()
        if not service.ready.is_set():
            raise ApiError(
                503, "not ready: warming up the engine", "not_ready", {"Retry-After": "1"}
            )
        return json_response({"status": "ready", "generation": service.live.generation})

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text format: requests, stage latencies, batch sizes, queue depth."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _info_record(service: Service) -> dict[str, Any]:
    with service.live.lease() as retriever:
        manifest = retriever.gallery.manifest
        threshold = retriever.threshold
        labels = service.labels_of(retriever)
    card = service.engine.card
    settings = service.settings
    return {
        "schema": INFO_SCHEMA,
        "model": {
            "family": card.family,
            "backbone": card.backbone,
            "embed_dim": card.embed_dim,
            "precision": card.precision,
            "input_size": card.input_size,
            "summary": card.summary(),
        },
        "engine": _engine_facts(service).__dict__,
        "gallery": {
            "path": service.gallery_name,
            "items": manifest.live,
            "generation": manifest.generation,
            "labels": labels,
        },
        "threshold": {"value": threshold.value, "source": threshold.source},
        "batching": {
            "max_batch": settings.max_batch,
            "max_wait_ms": settings.max_wait_ms,
            "max_queue": settings.max_queue,
        },
        "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_k": MAX_K},
        "auth": settings.api_key is not None,
        "ready": service.ready.is_set(),
    }


async def _answer(
    service: Service,
    request: Request,
    k: int,
    labels: list[str] | None,
    min_score: float | None,
) -> SearchReply:
    """Read, decode, queue and wait for one search, each step bounded in time."""
    settings = service.settings
    name, data = await _read_upload(request)  # the gate ends an upload that stalls
    if len(data) > settings.max_upload_bytes:
        limit = settings.max_upload_bytes
        raise ApiError(413, f"{name}: larger than the limit of {limit} bytes (--max-upload-mb)")
    image, decode_ms = await anyio.to_thread.run_sync(
        service.decode, data, name, limiter=service.limiter("decode")
    )
    if await request.is_disconnected():  # the page moved on to a newer sketch: skip the engine
        raise ClientDisconnect()
    threshold = service.threshold_for(min_score)
    future = service.submit(
        SearchRequest(image, name, k, tuple(labels) if labels else None, threshold, decode_ms)
    )
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), settings.reply_timeout)
    except TimeoutError:
        raise ApiError(
            503, "busy: the search was not answered in time; retry", "overloaded",
            {"Retry-After": "1"},
        ) from None  # fmt: skip


async def _item_image(
    service: Service, request: Request, item_id: int, size: str, version: str | None
) -> Response:
    limiter = service.limiter("images")
    # In a thread: the item lookup waits for the gallery's lock, which a batch's search holds.
    item = await anyio.to_thread.run_sync(_locate, service, item_id, version, limiter=limiter)
    privacy = "private" if service.settings.api_key else "public"
    # A versioned URL always names the same bytes; an unversioned one may change on a rebuild.
    lifetime = "max-age=31536000, immutable" if version else "max-age=3600"
    headers = {"ETag": item.etag(size), "Cache-Control": f"{privacy}, {lifetime}"}
    if request.headers.get("if-none-match") == item.etag(size):
        return Response(status_code=304, headers=headers)
    if size == "original":
        media_type = await anyio.to_thread.run_sync(service.images.original, item, limiter=limiter)
        return FileResponse(item.file, media_type=media_type, headers=headers)
    body = await anyio.to_thread.run_sync(service.images.scaled, item, size, limiter=limiter)
    return Response(body, media_type="image/jpeg", headers=headers)


def _locate(service: Service, item_id: int, version: str | None) -> LocatedItem:
    with service.live.lease() as retriever:
        return service.images.locate(retriever, item_id, version)


async def _read_upload(request: Request) -> tuple[str, bytes]:
    """The query's name and bytes, from a raw image body or a form's `image` field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        async with request.form(max_files=1, max_fields=4) as form:
            field = form.get("image")
            if field is None or isinstance(field, str):
                raise ApiError(400, "the form has no file field named `image`")
            data = await field.read()
            name = _upload_name(field.filename)
    elif kind in RAW_IMAGE_TYPES:
        data, name = await request.body(), "upload"
    else:
        shown = kind or "none"
        raise ApiError(
            415,
            f"content type {shown}: send the image's bytes as image/png, image/jpeg, "
            "image/webp, image/bmp, image/tiff or application/octet-stream, or a "
            "multipart/form-data field `image`",
        )
    if not data:
        raise ApiError(400, f"{name}: empty upload (0 bytes)")
    return name, data


def _upload_name(filename: str | None) -> str:
    """A client's file name as shown in answers: its last part, one line, bounded."""
    base = os.path.basename((filename or "").replace("\\", "/"))
    clean = "".join(ch if ch.isprintable() else "?" for ch in base)[:UPLOAD_NAME_CHARS]
    return clean or "upload"


def _engine_facts(service: Service) -> EngineFacts:
    engine = service.engine
    card = engine.card
    return EngineFacts(
        Path(engine.path).name, engine.backend, engine.device, card.precision, card.family
    )


def _search_record(service: Service, reply: SearchReply, k: int) -> dict[str, Any]:
    record = retrieve_record(
        reply.answer,
        _engine_facts(service),
        (service.gallery_name, reply.items),
        reply.threshold,
        k,
    )
    record["gallery"]["generation"] = reply.generation
    answer = reply.answer
    record["timings_ms"]["queue"] = round(reply.queue_ms, 3)
    record["timings_ms"]["total"] = round(
        answer.decode_ms + reply.queue_ms + answer.embed_ms + answer.search_ms + answer.rerank_ms, 3
    )
    record["batch_size"] = reply.batch_size
    for result in record["results"]:
        result["file"] = None  # the server's paths stay private: images go by id
        result["image"] = image_url(result["id"], result.get("sha256"))
    return record


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError) -> Response:
        return json_response(err.body(), err.status, err.headers)

    @app.exception_handler(UploadTooLarge)
    async def too_large(_: Request, err: UploadTooLarge) -> Response:
        return json_response(error_body(413, str(err)), 413, {"Connection": "close"})

    @app.exception_handler(UploadStalled)
    async def stalled(_: Request, err: UploadStalled) -> Response:
        return json_response(error_body(408, str(err)), 408, {"Connection": "close"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> Response:
        return json_response(error_body(400, _validation_line(err)), 400)

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, __: ClientDisconnect) -> Response:
        """Nobody to answer: counted as 499 (nginx's "client closed request"), not an error."""
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, err: Exception) -> Response:
        # Said on stderr by the gate (the server error middleware raises it again after this).
        return json_response(error_body(500, f"internal error: {type(err).__name__}"), 500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException) -> Response:
        message = str(err.detail) if err.detail else ""
        return json_response(error_body(err.status_code, message), err.status_code, err.headers)


def _validation_line(err: RequestValidationError) -> str:
    """FastAPI's first validation problem as one line: ``k: Input should be ≥ 1``."""
    problems = err.errors()
    if not problems:
        return "bad request"
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
    return f"{where}: {first.get('msg', 'invalid')}"
