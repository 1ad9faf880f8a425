"""The driver's one HTTP listener: /metrics when the run exports them, /control always.

prometheus-client's own server serves only its registry; this one mounts its WSGI app beside
the control endpoint, on the same threading WSGI server class, so a run opens one port.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer

from s3dlio_ray._internal.model.errors import ConfigError

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Quiet(WSGIRequestHandler):
    """No access log on the run's terminal."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _router(routes: Mapping[str, WsgiApp]) -> WsgiApp:
    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        app = routes.get(environ.get("PATH_INFO", ""))
        if app is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"not here: {', '.join(sorted(routes))}\n".encode()]
        return app(environ, start_response)

    return route


def check_host(host: str) -> None:
    """Refuse, before anything starts, an address this machine cannot listen on (the run's
    metrics and control go there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"metrics_host {host}: this machine cannot listen there ({reason}): give 127.0.0.1 "
            "(the default), 0.0.0.0, or one of its own addresses"
        ) from None


class Listener:
    """Serves `routes` (path -> WSGI app) on host:port in a daemon thread until stopped."""

    def __init__(self, host: str, port: int, routes: Mapping[str, WsgiApp]) -> None:
        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self._server = make_server(host, port, _router(dict(routes)), Server, handler_class=_Quiet)
        # A short poll: stop() waits for the loop to notice (half a second by default, at the
        # end of every run).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name="s3dlio-ray-listener",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
