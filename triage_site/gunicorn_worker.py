"""gunicorn's threaded worker, where a request's headers are read by the poller, not a thread.

`make serve` used gunicorn's sync worker, where one connection holds one worker from its first
byte: six clients sending a header line every 3 s held every worker, and /healthz timed out.
gunicorn's threaded worker (gthread) keeps idle connections on its poller, but hands a
connection to a thread as soon as its first byte arrives; a client that then trickles the rest
holds that thread for as long as it likes.

Here the worker's main loop collects each request's headers itself, without blocking, and only
a connection whose headers are complete goes to a thread (the bytes read so far are handed to
gunicorn's parser). A slow client costs one socket on the poller, never a thread; one that has
not sent its headers within GUNICORN_HEADER_TIMEOUT seconds gets 408 and is closed, and headers
over HEADER_LIMIT bytes get 431. The application's own time (a large CSV export) is not bounded
by this: it starts once the headers are in.

Built on gunicorn's ThreadWorker methods `enqueue_req` (a connection goes to the thread pool),
`handle` (a thread serves one request) and `murder_keepalived` (the main loop's sweep, at least
once a second); gunicorn is pinned in requirements.txt.
"""

from __future__ import annotations

import os
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import ThreadWorker

# nginx's default is 4 buffers of 8 KiB; a request's headers beyond this are refused.
HEADER_LIMIT = 64 * 1024
HEADER_END = (b"\r\n\r\n", b"\n\n")


def headers_complete(buffered: bytes) -> bool:
    return any(end in buffered for end in HEADER_END)


class HeaderBufferingWorker(ThreadWorker):
    """gthread, with request headers read on the poller (see the module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get("GUNICORN_HEADER_TIMEOUT") or 10)
        self.reading: dict[object, float] = {}  # connection -> deadline; main thread only

    def enqueue_req(self, conn) -> None:
        pending = conn.parser is not None and conn.parser.unreader.buf.getvalue()
        if self.cfg.is_ssl or pending or getattr(conn, "head", None) is not None:
            # TLS is gunicorn's to read; bytes already in the parser are a request under way;
            # a connection with its headers collected goes on to a thread.
            super().enqueue_req(conn)
            return
        conn.head = b""
        self.reading[conn] = time.monotonic() + self.header_timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.collect, conn))

    def collect(self, conn, client) -> None:
        """Read what the connection has sent, without blocking; hand it on once complete."""
        try:
            data = conn.sock.recv(8192)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.drop(conn)  # the client went away before sending a request
            return
        conn.head += data
        if headers_complete(conn.head):
            self.poller.unregister(conn.sock)
            del self.reading[conn]
            conn.data_ready = True
            super().enqueue_req(conn)
        elif len(conn.head) > HEADER_LIMIT:
            self.drop(conn, b"431 Request Header Fields Too Large")

    def handle(self, conn):
        """In a thread: give the parser the collected bytes, then serve as gthread does."""
        head = getattr(conn, "head", None)
        if head is not None:
            conn.head = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(head)
        return super().handle(conn)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        now = time.monotonic()
        for conn, deadline in list(self.reading.items()):
            if force or deadline <= now:
                self.log.warning(
                    "Closed the connection from %s: no complete request headers within %.0f s",
                    conn.client,
                    self.header_timeout,
                )
                self.drop(conn, b"408 Request Timeout")

    def drop(self, conn, status: bytes | None = None) -> None:
        """Close a connection that is collecting its headers (telling the client why)."""
        del self.reading[conn]
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        if status is not None:
            try:
                conn.sock.send(b"HTTP/1.1 " + status + b"\r\nConnection: close\r\n\r\n")
            except OSError:
                pass  # the client is gone, or its window is full: closing says enough
        self.nr_conns -= 1
        conn.close()
