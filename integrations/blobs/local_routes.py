"""HTTP routes that accept and serve the local blob store's signed upload and download URLs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from integrations.blobs.local import (
    AlreadyStoredError,
    BodyTooLargeError,
    BodyTooShortError,
    InvalidKeyError,
    LocalBlobStore,
)
from integrations.blobs.signing import SignatureError, UploadGrant, attachment_disposition


def _error(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status)


def _length_problem(request: Request, grant: UploadGrant) -> Response | None:
    """Refuse before reading a byte when the declared length cannot match the grant."""
    declared = request.headers.get("content-length")
    if declared is None:
        return _error(411, "Content-Length required")
    if not declared.isdigit():
        return _error(400, "malformed Content-Length")
    if int(declared) > grant.size:
        return _error(413, "body larger than the signed size")
    if int(declared) < grant.size:
        return _error(400, "body smaller than the signed size")
    return None


BLOB_PATH_PREFIX = "/blobs/"  # what LocalBlobStore's URLs start with (base_url + /blobs/)

# Whether the key's asset still awaits its bytes (the composition root asks the database).
UploadGate = Callable[[str], Awaitable[bool]]
# Whether the key's bytes may be served now (its asset is AVAILABLE).
DownloadGate = Callable[[str], Awaitable[bool]]


async def _put(
    store: LocalBlobStore, request: Request, key: str, may_upload: UploadGate | None
) -> Response:
    grant = store.authorise_upload(key, request.query_params)
    if may_upload is not None and not await may_upload(key):
        return _error(409, "this asset no longer accepts uploads")
    if await store.size_of(key) is not None:
        return _error(412, "bytes were uploaded with this URL already; it is good for one upload")
    if grant.size > store.max_bytes:
        return _error(413, "upload larger than this store accepts")
    if request.headers.get("content-type") != grant.content_type:
        return _error(403, "Content-Type differs from the signed one")
    problem = _length_problem(request, grant)
    if problem is not None:
        return problem
    pending = await store.begin_write(key, grant.size)
    try:
        async for chunk in request.stream():
            await pending.write(chunk)
        etag = await pending.commit(grant.content_type)
    except BodyTooLargeError:
        return _error(413, "body larger than the signed size")
    except BodyTooShortError:
        return _error(400, "body shorter than the signed size")
    except AlreadyStoredError:
        return _error(412, "bytes were uploaded with this URL already; it is good for one upload")
    finally:
        await pending.abort()
    return Response(status_code=201, headers={"ETag": f'"{etag}"'})


async def _get(
    store: LocalBlobStore, request: Request, key: str, may_download: DownloadGate | None
) -> Response:
    grant = store.authorise_download(key, request.query_params)
    if may_download is not None and not await may_download(key):
        return _error(404, "no such blob")  # the asset was deleted or its owner erased
    found = await store.open_for_read(key)
    if found is None:
        return _error(404, "no such blob")
    stat_result, content_type = found
    return FileResponse(
        store.path_for(key),
        media_type=content_type,
        stat_result=stat_result,
        headers={"Content-Disposition": attachment_disposition(grant.file_name)},
    )


def blob_routes(
    store: LocalBlobStore,
    may_upload: UploadGate | None = None,
    may_download: DownloadGate | None = None,
) -> list[Route]:
    """The /blobs/{key} route for PUT (upload), GET and HEAD (download) of signed URLs.

    A PUT stores bytes once (412 after that), and only while `may_upload` says the key's
    asset awaits them (409 otherwise); a GET serves them only while `may_download` says
    their asset is AVAILABLE (404 otherwise)."""

    async def endpoint(request: Request) -> Response:
        key = request.path_params["key"]
        if not isinstance(key, str):
            return _error(400, "invalid key")
        try:
            store.path_for(key)
            if request.method == "PUT":
                return await _put(store, request, key, may_upload)
            return await _get(store, request, key, may_download)
        except InvalidKeyError:
            return _error(400, "invalid key")
        except SignatureError as e:
            return _error(403, f"forbidden: {e}")

    return [Route(BLOB_PATH_PREFIX + "{key:path}", endpoint, methods=["PUT", "GET", "HEAD"])]
