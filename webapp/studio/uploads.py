"""Bounded, streamed uploads (docs/architecture.md §5).

- `UploadGuard` (middleware, after authentication) looks at a request before its body is read: a
  Content-Length over the limit is a 413, a multipart body from someone not logged in (no session,
  no valid API token) a 401/403, both without reading a byte - unless it is as small as a login
  form (ANONYMOUS_MAX_BYTES, with a Content-Length), and then a file in it is refused unwritten. A chunked multipart body (no
  Content-Length) is read through a cap. The guard then parses the multipart body itself, so a
  413 or a malformed body is answered here, and it deletes whatever of the request's files is
  still in the incoming area when the response is done.
- `BoundedUploadHandler` (the only FILE_UPLOAD_HANDLERS entry) writes each file straight to
  STORAGE_ROOT/incoming/<request>/ and stops as soon as the request's running total passes
  UPLOAD_MAX_MB: nothing beyond the limit is written and nothing of a refused upload is kept.
  Files stay on disk under a random name; the service moves the ones it keeps (rename, no copy).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.core.handlers.wsgi import LimitedStream

MB = 1024 * 1024
# Room in a body for the form fields and multipart boundaries around the files.
FORM_SLACK = 1 * MB
# The largest multipart body read from someone not logged in (a login form posted as multipart).
ANONYMOUS_MAX_BYTES = 16 * 1024


def upload_limit() -> int:
    """The most file bytes one request may carry (UPLOAD_MAX_MB)."""
    return settings.UPLOAD_MAX_MB * MB


def incoming_root() -> Path:
    return Path(settings.STORAGE_ROOT) / "incoming"


class UploadTooLarge(Exception):
    def __init__(self, received: int | None = None):
        self.received = received
        super().__init__(f"the upload is over the limit of {settings.UPLOAD_MAX_MB} MB (UPLOAD_MAX_MB); "
                         "send smaller files, or ask the operator to raise UPLOAD_MAX_MB")


class AnonymousFile(Exception):
    """A file part in a request from someone not logged in."""


class IncomingFile(UploadedFile):
    """An uploaded file written to the incoming area; `path` is where it is on disk."""

    def __init__(self, path: Path, name, content_type, charset, content_type_extra=None):
        self.path = path
        super().__init__(open(path, "w+b"), name, content_type, 0, charset, content_type_extra)

    def temporary_file_path(self) -> str:
        return str(self.path)

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class BoundedUploadHandler(FileUploadHandler):
    """Write uploaded files to STORAGE_ROOT/incoming/<request>/, refusing past UPLOAD_MAX_MB."""

    def __init__(self, request=None):
        super().__init__(request)
        self.total = 0
        self.limit = upload_limit()
        self.current: IncomingFile | None = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.limit + FORM_SLACK:
            raise UploadTooLarge(content_length)

    def new_file(self, field_name, file_name, content_type, content_length, charset=None,
                 content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        if getattr(self.request, "_anonymous_body", False):
            raise AnonymousFile()
        folder = request_incoming(self.request)
        self.current = IncomingFile(folder / uuid.uuid4().hex, file_name, content_type, charset,
                                    content_type_extra)

    def receive_data_chunk(self, raw_data, start):
        self.total += len(raw_data)
        if self.total > self.limit:
            self.current.discard()
            raise UploadTooLarge(self.total)
        self.current.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.current.seek(0)
        self.current.size = file_size
        return self.current

    def upload_interrupted(self):
        if self.current is not None:
            self.current.discard()


def request_incoming(request) -> Path:
    """This request's folder in the incoming area (made on first use)."""
    folder = getattr(request, "_incoming_dir", None)
    if folder is None:
        folder = incoming_root() / uuid.uuid4().hex
        folder.mkdir(parents=True, exist_ok=True)
        request._incoming_dir = folder
    return folder


def _has_token(request) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _, key = header.partition(" ")
    if keyword != "Token" or not key or len(key) > 40:
        return False
    from rest_framework.authtoken.models import Token
    return Token.objects.filter(key=key.strip(), user__is_active=True).exists()


def _answer(request, status: int, message: str):
    """A refusal in the caller's language: JSON for the API, plain text for a page."""
    if request.path.startswith("/api/") or request.headers.get("x-requested-with") == "XMLHttpRequest":
        return JsonResponse({"detail": message}, status=status)
    from django.http import HttpResponse
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _anonymous(request):
    if request.path.startswith("/api/"):
        return _answer(request, 401, "Authentication credentials were not provided: send "
                                     "`Authorization: Token <your token>` (see /api/auth/token/)")
    return _answer(request, 403, "log in before uploading files")


class UploadGuard:
    """See the module docstring."""

    BODY_METHODS = ("POST", "PUT", "PATCH")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            refusal = self.refuse(request)
            if refusal is not None:
                return refusal
            return self.get_response(request)
        finally:
            folder = getattr(request, "_incoming_dir", None)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def refuse(self, request):
        if request.method not in self.BODY_METHODS:
            return None
        raw_length = request.META.get("CONTENT_LENGTH") or ""
        try:
            length = int(raw_length) if raw_length else None
        except ValueError:
            return _answer(request, 400, f"Content-Length {raw_length[:30]!r} is not a number")
        if length is not None and length < 0:
            return _answer(request, 400, "Content-Length must not be negative")
        if length is not None and length > upload_limit() + FORM_SLACK:
            return _answer(request, 413, f"the request body is {length / MB:.0f} MB, over the upload limit of "
                                         f"{settings.UPLOAD_MAX_MB} MB (UPLOAD_MAX_MB); send smaller files")
        if not request.content_type.startswith("multipart/"):
            return None
        if not (request.user.is_authenticated or _has_token(request)):
            if length is None or length > ANONYMOUS_MAX_BYTES:
                return _anonymous(request)
            request._anonymous_body = True   # a login form's size: read it, but write no file
        if length is None and (request.META.get("wsgi.input_terminated")
                               or "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()):
            # A chunked body has no Content-Length: read it through a cap; the handler refuses
            # it at the limit, like any other.
            cap = upload_limit() + FORM_SLACK
            request.META["CONTENT_LENGTH"] = str(cap)
            request._stream = LimitedStream(request.environ["wsgi.input"], cap)
        try:
            request.FILES  # parse now, through BoundedUploadHandler
        except UploadTooLarge as exc:
            return _answer(request, 413, str(exc))
        except AnonymousFile:
            return _anonymous(request)
        except (MultiPartParserError, TooManyFilesSent, TooManyFieldsSent, RequestDataTooBig) as exc:
            return _answer(request, 400, f"the multipart body cannot be read: {exc}")
        return None
