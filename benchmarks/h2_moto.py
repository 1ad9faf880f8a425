"""moto's S3 served by hypercorn: HTTP/2 with prior knowledge (h2c) on TCP, or ALPN over TLS.

Used by the HTTP/2 tests and the benchmark. Two hypercorn 0.18 gotchas are handled here:
request bodies above `wsgi_max_body_size` (16 MiB by default) drop the connection, and a WSGI
response that yields no chunk at all (HEAD, 204) becomes a 500. hypercorn offers no setting for
HTTP/2 flow-control windows and its 64 KiB default makes uploads crawl, so `--window` raises the
server's initial stream window and its connection window.
"""

from __future__ import annotations

import argparse
import asyncio

import h2.settings
from hypercorn.asyncio import serve
from hypercorn.config import Config
from hypercorn.protocol.h2 import H2Protocol
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def never_empty(app):
    def wrapped(environ, start_response):
        chunks = [chunk for chunk in app(environ, start_response) if chunk]
        return chunks or [b""]

    return wrapped


def widen_windows(window: int) -> None:
    original_init = H2Protocol.__init__
    original_initiate = H2Protocol.initiate

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.connection.local_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
        self.connection.local_settings.acknowledge()

    async def initiate(self, *args, **kwargs):
        await original_initiate(self, *args, **kwargs)
        self.connection.increment_flow_control_window(window)
        await self._flush()

    H2Protocol.__init__ = __init__
    H2Protocol.initiate = initiate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--window", type=int, default=16 * 1024 * 1024)
    args = parser.parse_args()
    config = Config()
    address = f"127.0.0.1:{args.port}"
    config.bind = [address]
    if args.certfile:
        config.certfile, config.keyfile = args.certfile, args.keyfile
        config.alpn_protocols = ["h2", "http/1.1"]
    config.wsgi_max_body_size = 6 * 1024**3
    config.accesslog = None
    config.errorlog = None
    if args.window > 65535:
        widen_windows(args.window)
    app = never_empty(DomainDispatcherApplication(create_backend_app))
    asyncio.run(serve(app, config, mode="wsgi"))


if __name__ == "__main__":
    main()
