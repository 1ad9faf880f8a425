"""How a running run takes changes from outside: its control endpoint, its token, the per-user
registry that `s3dlio-ray control` finds it by, and that command's client.

The driver serves POST /control on its metrics listener (a control-only listener when metrics
are off), on metrics_host, and takes a change only from a caller holding the run's own token
(`Authorization: Bearer TOKEN`), a random one per run. It writes the port and token to a file
only its user can read (mode 0600, one per run id, under $XDG_STATE_HOME/s3dlio-ray/runs) and
removes it when the run ends. Whoever can read that file may steer the run, nobody else.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from s3dlio_ray._internal.live.listener import WsgiApp
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.settings.changes import Overrides
from s3dlio_ray._internal.settings.schema import Settings

MAX_REQUEST_BYTES = 64 * 1024


class Changer:
    """Takes changes for one run from any thread: each is checked against the run's settings
    (and the changes before it) under a lock, then handed to `apply` on the run's event loop."""

    def __init__(
        self,
        settings: Settings,
        apply: Callable[[Overrides, dict[str, Any]], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._settings = settings
        self._apply = apply
        self._loop = loop
        self._lock = threading.Lock()
        self._overrides = Overrides()

    def change(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """What the change did (`changed`: the settings now different, and `version`); a
        ConfigError, and nothing changed, when the run cannot take it."""
        with self._lock:
            overrides, changed = self._overrides.change(self._settings, request)
            if changed:
                self._overrides = overrides
                self._loop.call_soon_threadsafe(self._apply, overrides, changed)
        return {"changed": changed, "version": self._overrides.version}


def control_app(changer: Changer, token: str) -> WsgiApp:
    """POST /control: a JSON object of settings to change (and `paused`), the run's token in
    the Authorization header; answers JSON: what changed, or `error` in one line."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def answer(status: str, body: dict[str, Any]) -> list[bytes]:
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(body).encode() + b"\n"]

        if environ["REQUEST_METHOD"] != "POST":
            return answer("405 Method Not Allowed", {"error": "POST a JSON object of changes"})
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            return answer("401 Unauthorized", {"error": "not this run's control token"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_REQUEST_BYTES:
            return answer("400 Bad Request", {"error": "expected a JSON object of changes"})
        try:
            request = json.loads(environ["wsgi.input"].read(length))
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return answer("400 Bad Request", {"error": "expected a JSON object of changes"})
        try:
            return answer("200 OK", changer.change(request))
        except S3DlioRayError as exc:
            return answer("400 Bad Request", {"error": str(exc)})

    return app


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Registration:
    """Where a running run takes changes, as its registry file says."""

    run_id: str
    url: str
    token: str
    pid: int

    def __repr__(self) -> str:
        return f"Registration(run_id={self.run_id!r}, url={self.url!r}, pid={self.pid})"


def registry_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "s3dlio-ray" / "runs"


def register(run_id: str, host: str, port: int, token: str) -> Path:
    """The run's port and token, written where only this user can read them."""
    shown = f"[{host}]" if ":" in host else host
    registration = Registration(run_id, f"http://{shown}:{port}/control", token, os.getpid())
    folder = registry_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)  # a folder that was there already keeps its mode otherwise
    path = folder / f"{run_id}.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # as for an older file of the same name
    with os.fdopen(descriptor, "w") as out:
        json.dump(asdict(registration), out)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> list[Registration]:
    """The runs of this user still going on this machine, by their registry files."""
    found = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            registration = Registration(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(registration.pid):
            found.append(registration)
    return found


def find(run_id: str | None) -> Registration:
    """The run to steer: the one named, or the only one going; one line saying why not."""
    runs = running()
    where = registry_dir()
    if run_id is not None:
        named = [r for r in runs if r.run_id == run_id]
        if not named:
            raise S3DlioRayError(
                f"control: no run {run_id} is going for this user on this machine (none is "
                f"registered in {where}); on a RayJob run `control` in the head pod"
            )
        return named[0]
    if not runs:
        raise S3DlioRayError(
            f"control: no run is going for this user on this machine (none is registered in "
            f"{where}); on a RayJob run `control` in the head pod"
        )
    if len(runs) > 1:
        ids = ", ".join(r.run_id for r in runs)
        raise S3DlioRayError(f"control: {len(runs)} runs are going ({ids}): name one (--run-id)")
    return runs[0]


def send(registration: Registration, request: Mapping[str, Any]) -> dict[str, Any]:
    """Ask the run to take the change; what it changed, or one line saying why not."""
    try:
        response = httpx.post(
            registration.url,
            json=dict(request),
            headers={"Authorization": f"Bearer {registration.token}"},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise S3DlioRayError(
            f"control: run {registration.run_id} does not answer at {registration.url} "
            f"({type(exc).__name__}): has it ended?"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200:
        reason = answer.get("error") or f"HTTP {response.status_code}"
        refused = ConfigError if response.status_code == 400 else S3DlioRayError
        reason = reason.removeprefix("control: ")
        raise refused(f"control: run {registration.run_id} refused: {reason}")
    return answer
