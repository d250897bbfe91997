"""Uploads against a real gunicorn (the production server) on SQLite, UPLOAD_MAX_MB at its default
(200): how fast a 1 GiB upload is refused, how much of it is written, and whether the worker's
memory grows with it.

Cases, each timed from the first byte sent to the status line received:
- 1 GiB with its Content-Length (what curl sends): refused before the body is read.
- 1 GiB chunked (no Content-Length): read until the files pass the limit, then refused.
- 1 GiB chunked from an anonymous client: refused before the body is read.
- 20 MB with a token: accepted (202), for comparison.

Prints a table and writes bench-out/upload.json; exits non-zero if the 1 GiB Content-Length case
takes 2 s or more, if anything beyond the limit reaches the disk, or if the worker's peak memory
grows by more than 100 MB over the run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.factories import free_port, wait_until  # noqa: E402

MB = 1024 * 1024
GIB = 1024 * MB
LIMIT_MB = 200
BOUNDARY = "bench-boundary"


def head(name: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\nuser_id,item_id,timestamp\r\n").encode()


def send(port: int, size: int, token: str | None, chunked: bool, name: str) -> dict:
    """POST a multipart body with one file of `size` bytes; stop sending once the server answers."""
    first, tail = head(name), f"\r\n--{BOUNDARY}--\r\n".encode()
    total = len(first) + size + len(tail)
    lines = [f"POST /api/datasets/ HTTP/1.1", f"Host: 127.0.0.1:{port}",
             f"Content-Type: multipart/form-data; boundary={BOUNDARY}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Token {token}")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(True)
    start = time.perf_counter()
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    block = b"1,2,3\n" * (MB // 6)
    sent, answer = 0, b""

    def frame(data: bytes) -> bytes:
        return (f"{len(data):x}\r\n".encode() + data + b"\r\n") if chunked else data

    def readable() -> bool:
        import select
        return bool(select.select([sock], [], [], 0)[0])

    try:
        if not chunked:   # like curl with a large body: wait briefly for an early answer first
            import select
            if select.select([sock], [], [], 1.0)[0]:
                answer = sock.recv(65536)
        pieces = [first] + [block] * (size // len(block)) + [block[: size % len(block)], tail]
        for piece in pieces:
            if answer or readable():
                break
            sock.sendall(frame(piece))
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    except ConnectionResetError:
        pass
    seconds = time.perf_counter() - start
    sock.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
    return {"status": status, "seconds": round(seconds, 3), "body_mb_sent": round(sent / MB, 1),
            "body_mb_offered": round(total / MB, 1)}


def main() -> int:
    storage = Path(tempfile.mkdtemp(prefix="upload-bench-"))
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "webapp.settings", "SECRET_KEY": "bench-" + "x" * 50,
           "DEBUG": "0", "SECURE_SSL_REDIRECT": "0", "STORAGE_ROOT": str(storage),
           "DATABASE_URL": f"sqlite:///{storage}/db.sqlite3", "CELERY_BROKER_URL": "memory://",
           "UPLOAD_MAX_MB": str(LIMIT_MB), "THROTTLE_UPLOADS": "1000/hour", "ALLOWED_HOSTS": "127.0.0.1"}
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run([py, "manage.py", "shell", "-c",
                            "from django.contrib.auth.models import User; from rest_framework.authtoken.models "
                            "import Token; u = User.objects.create_user('bench', password='bench-password-1'); "
                            "print(Token.objects.create(user=u).key)"],
                           cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout.split()[-1]
    server = subprocess.Popen([py, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                               "--timeout", "120"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(storage / "gunicorn.log", "wb"))
    try:
        def worker_pid():
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            return int(pids[0]) if pids else None
        wait_until(lambda: worker_pid() and _answers(port), 60, 0.2, "gunicorn did not start")
        pid = worker_pid()
        incoming = storage / "incoming"
        peak_disk = {"bytes": 0}
        stop = threading.Event()

        def watch_disk():
            while not stop.is_set():
                size = sum(p.stat().st_size for p in incoming.rglob("*") if p.is_file()) if incoming.exists() else 0
                peak_disk["bytes"] = max(peak_disk["bytes"], size)
                time.sleep(0.02)
        watcher = threading.Thread(target=watch_disk, daemon=True)
        watcher.start()
        send(port, 1 * MB, token, False, "warm-up")   # imports, first request
        rss_before = _hwm_mb(pid)
        cases = {
            "1 GiB, Content-Length": send(port, GIB, token, False, "cl"),
            "1 GiB, chunked": send(port, GIB, token, True, "chunked"),
            "1 GiB, chunked, anonymous": send(port, GIB, None, True, "anon"),
            "20 MB, Content-Length (accepted)": send(port, 20 * MB, token, False, "ok"),
        }
        stop.set()
        watcher.join()
        rss_after = _hwm_mb(pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = {"limit_mb": LIMIT_MB, "cases": cases, "worker_peak_rss_mb": {"before": rss_before, "after": rss_after},
              "incoming_peak_mb": round(peak_disk["bytes"] / MB, 1), "leftover_files":
                  sorted(str(p.relative_to(storage)) for p in (storage / "incoming").rglob("*") if p.is_file())
                  if (storage / "incoming").exists() else []}
    print(f"{'case':<36}{'status':>7}{'seconds':>9}{'MB sent':>10}")
    for name, case in cases.items():
        print(f"{name:<36}{case['status']:>7}{case['seconds']:>9.3f}{case['body_mb_sent']:>10.1f}")
    print(f"gunicorn worker peak RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after; incoming area peak "
          f"{result['incoming_peak_mb']} MB (limit {LIMIT_MB} MB); files left: {len(result['leftover_files'])}")
    out = ROOT / "bench-out" / "upload.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    failures = []
    if cases["1 GiB, Content-Length"]["status"] != "413" or cases["1 GiB, Content-Length"]["seconds"] >= 2:
        failures.append("the 1 GiB Content-Length upload was not refused with 413 in under 2 s")
    if cases["1 GiB, chunked"]["status"] != "413" or cases["1 GiB, chunked, anonymous"]["status"] != "401":
        failures.append("a chunked 1 GiB upload was not refused (413 / 401)")
    if cases["20 MB, Content-Length (accepted)"]["status"] != "202":
        failures.append("the 20 MB upload was not accepted")
    if result["incoming_peak_mb"] > LIMIT_MB or result["leftover_files"]:
        failures.append("more than the limit reached the disk, or files were left")
    if rss_after - rss_before > 100:
        failures.append(f"the worker's memory grew by {rss_after - rss_before:.0f} MB")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/")
    except OSError:
        return False


def _hwm_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
