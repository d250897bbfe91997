"""The upload path under attack: a Content-Length over UPLOAD_MAX_MB (5 MB in the tests) is a 413
before a byte is read; a chunked body is cut off as soon as its files pass the limit; a multipart
body from someone not logged in is never read. Nothing of a refused upload stays on disk."""

import pytest
from django.test import Client

from tests.factories import CSV_OK, ITEMS_OK, prepared, storage_entries

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
BOUNDARY = "studio-test-boundary"


class Body:
    """A multipart body of `size` bytes of one file, produced as it is read (never all in
    memory); counts what the server read."""

    def __init__(self, size: int, name: str = "big.csv"):
        self.head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbig\r\n"
                     f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
                     f"Content-Type: text/csv\r\n\r\n").encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.size, self.served = size, 0
        self.total = len(self.head) + size + len(self.tail)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.total - self.served
        out = bytearray()
        while len(out) < n and self.served < self.total:
            at = self.served
            if at < len(self.head):
                piece = self.head[at: at + n - len(out)]
            elif at < len(self.head) + self.size:
                piece = b"1,2,3\n" * ((min(n - len(out), len(self.head) + self.size - at) + 5) // 6)
                piece = piece[: min(n - len(out), len(self.head) + self.size - at)]
            else:
                start = at - len(self.head) - self.size
                piece = self.tail[start: start + n - len(out)]
            out += piece
            self.served += len(piece)
        return bytes(out)

    def readline(self, *args):  # not used by the multipart parser; here for the WSGI contract
        return self.read(65536)


class Unreadable:
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def _post(client, path, body, **extra):
    """POST `body` as the raw WSGI input (no Content-Length unless given in `extra`)."""
    return client.generic("POST", path, b"", content_type=f"multipart/form-data; boundary={BOUNDARY}",
                          **{"CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}", "wsgi.input": body, **extra})


def incoming(settings) -> list:
    root = settings.STORAGE_ROOT / "incoming"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(client, settings):
    before = storage_entries()
    response = _post(client, "/api/datasets/", Unreadable(), CONTENT_LENGTH=str(1024 * MB))
    assert response.status_code == 413
    assert "upload limit of 5 MB (UPLOAD_MAX_MB)" in response.json()["detail"]
    assert incoming(settings) == [] and storage_entries() == before


def test_a_chunked_body_is_cut_off_at_the_limit(client, settings):
    before = storage_entries()
    body = Body(1024 * MB)   # 1 GiB offered
    response = _post(client, "/api/datasets/", body, HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 413, response.content
    assert "over the limit of 5 MB" in response.json()["detail"]
    assert body.served < 7 * MB           # read up to the limit, not the gigabyte
    assert incoming(settings) == [] and storage_entries() == before


def test_a_chunked_body_under_the_limit_is_accepted(client, settings):
    body = Body(len(CSV_OK), name="reviews.csv")
    body.size = len(CSV_OK)
    body.read = _fixed_reader(body.head + CSV_OK + f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
                              f"name=\"files\"; filename=\"meta.csv\"\r\n\r\n".encode() + ITEMS_OK + body.tail)
    response = _post(client, "/api/datasets/", body, HTTP_TRANSFER_ENCODING="chunked")
    assert prepared(client, response)["status"] == "ready"
    assert incoming(settings) == []


def _fixed_reader(data: bytes):
    state = {"at": 0}

    def read(n=-1):
        n = len(data) - state["at"] if n is None or n < 0 else n
        piece = data[state["at"]: state["at"] + n]
        state["at"] += len(piece)
        return piece
    return read


def test_files_past_the_limit_in_a_declared_body_are_refused_and_removed(client, settings):
    before = storage_entries()
    body = Body(6 * MB)
    response = _post(client, "/api/datasets/", body, CONTENT_LENGTH=str(body.total))
    assert response.status_code == 413
    assert incoming(settings) == [] and storage_entries() == before


@pytest.mark.parametrize("path,status", [("/api/datasets/", 401), ("/api/auth/token/", 401),
                                         ("/datasets/upload/", 403), ("/accounts/login/", 403)])
def test_an_anonymous_multipart_post_is_refused_unread(path, status, settings):
    response = _post(Client(), path, Unreadable(), CONTENT_LENGTH=str(4 * MB))
    assert response.status_code == status
    assert incoming(settings) == []


def test_a_wrong_token_is_anonymous(settings):
    response = _post(Client(), "/api/datasets/", Unreadable(), CONTENT_LENGTH=str(MB),
                     HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert response.status_code == 401


def test_a_malformed_content_length_is_a_400(client):
    response = _post(client, "/api/datasets/", Unreadable(), CONTENT_LENGTH="12abc")
    assert response.status_code == 400 and "Content-Length" in response.json()["detail"]


def test_the_dashboards_upload_is_bounded_too(web, settings):
    body = Body(1024 * MB)
    response = _post(web, "/datasets/upload/", body, HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 413 and body.served < 7 * MB
    assert incoming(settings) == []


def test_a_small_anonymous_multipart_post_with_a_file_writes_nothing(settings):
    before = storage_entries()
    from django.core.files.uploadedfile import SimpleUploadedFile
    response = Client().post("/api/datasets/", {"name": "x", "files": SimpleUploadedFile("r.csv", CSV_OK)})
    assert response.status_code == 401
    assert incoming(settings) == [] and storage_entries() == before


def test_the_login_form_posted_as_multipart_still_logs_in(user):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "alice-password-123"})
    assert response.status_code == 302
