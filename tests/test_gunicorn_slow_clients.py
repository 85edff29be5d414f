"""Red-team F11: slow clients cannot take `make serve`'s workers; /healthz still answers.

A real gunicorn, with the project's gunicorn.conf.py, on a free loopback port: one worker with
one thread, so a single held thread would show. Six connections send a header line every half
second (the attack's 3 s, compressed); /healthz must answer throughout, and the slow ones get
408 at the header deadline. Every wait is bounded and the server is stopped in any case.
"""

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER_TIMEOUT = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str = "/healthz", timeout: float = 3) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read()


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        # The HTTP layer is under test, not the database: SQLite on either suite's run.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "1",
        "GUNICORN_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    }
    env.pop("PYTEST_VERSION", None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "gunicorn", "triage_site.wsgi", "--config", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # up to ~20 s to start
            try:
                assert get(port, timeout=1) == 200
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not start")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_slow_header_senders_take_no_worker_and_are_cut_at_the_deadline(server):
    slow = [socket.create_connection(("127.0.0.1", server), timeout=5) for _ in range(6)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answered = []
        for round_ in range(8):  # 4 s of trickling: past the 3 s deadline
            time.sleep(0.5)
            for sock in slow:
                try:
                    sock.sendall(f"X-Slow-{round_}: 1\r\n".encode())
                except OSError:
                    pass  # already cut
            answered.append(get(server))
        assert answered == [200] * 8
        for sock in slow:
            assert sock.recv(100).startswith(b"HTTP/1.1 408")
    finally:
        for sock in slow:
            sock.close()


def test_requests_still_work_in_pieces_with_bodies_and_keepalive(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        # Headers in three pieces, then a body: the parser gets every byte, in order.
        sock.sendall(b"POST /healthz HTTP/1.1\r\n")
        time.sleep(0.2)
        sock.sendall(b"Host: 127.0.0.1\r\nContent-Length: 5\r\n")
        time.sleep(0.2)
        sock.sendall(b"\r\nhello")
        status, _ = read_response(sock)
        assert status == 403  # Django's CSRF check: the request reached the application whole
        # The same connection, kept alive, serves the next request.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert read_response(sock) == (200, b'{"status": "ok", "database": "ok"}')


def test_oversized_headers_are_refused(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70_000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")
    assert get(server) == 200
