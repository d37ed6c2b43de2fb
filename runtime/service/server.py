"""Running the service: bind the socket, say where, serve with uvicorn until stopped.

The socket is bound here, before uvicorn starts, so that ``--port 0`` (a free port, as tests
and benchmarks use) can be announced: the first line on stdout is ``serving http://HOST:PORT/``.
SIGINT and SIGTERM stop it: running searches finish, the service and the engine close, and
the process exits 0.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from starlette.middleware.cors import CORSMiddleware

from sketchsearch.data.errors import UsageError
from sketchsearch.runtime.service.app import create_app
from sketchsearch.runtime.service.gate import Gate
from sketchsearch.runtime.service.service import Service

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; a one-line usage error when that fails."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as err:
        raise UsageError(f"--host {host}: {getattr(err, 'strerror', None) or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    service: Service,
    sock: socket.socket,
    debug: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT/SIGTERM; closes the service (not the engine) at the end."""
    app = create_app(service)
    gated: Any = Gate(
        app,
        service.metrics,
        service.settings.api_key,
        service.settings.max_upload_bytes,
        report=_reporter(service, debug),
        upload_idle=service.settings.upload_timeout,
    )
    if service.settings.cors_origins:
        gated = CORSMiddleware(
            gated,
            allow_origins=list(service.settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "ETag"],  # a page elsewhere reads them too
        )
    config = uvicorn.Config(
        gated,
        log_level="info" if debug else "warning",
        access_log=debug,
        lifespan="off",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    service.start()
    try:
        _Server(config).run(sockets=[sock])
    finally:
        service.close()
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn's server, except that a stopping signal is not raised again at the end.

    uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which kills the process by
    the signal (exit 143 for SIGTERM) before the service and the engine are closed. Here a
    signal means "stop": shut down, close, exit 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _reporter(service: Service, debug: bool) -> Callable[[BaseException], None]:
    def report(err: BaseException) -> None:
        if debug:
            traceback.print_exception(err, file=sys.stderr)
        else:
            service.notify(f"internal error answering a request: {type(err).__name__}: {err}")

    return report
