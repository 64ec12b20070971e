"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``, standard library
only): open a URL as a user would and learn whether it became a download or a page, and the page's DOM once
its load event has fired (after every synchronous script and request of the page)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

#: A bound on one exchange with the browser (it answers in well under a second).
REPLY_TIMEOUT = 60
#: Puts the pipe's two ends on the descriptors Chromium reads (3) and writes (4), then becomes Chromium.
_TRAMPOLINE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"
)


@dataclass(frozen=True)
class Visit:
    """What opening a URL did: a download (nothing shown, ``dom`` of the blank page left), or a page."""

    download: bool
    location: str
    dom: str


class Chromium:
    """One headless Chromium (a fresh profile in ``profile``) for a ``with`` block; downloads are refused."""

    def __init__(self, executable: str, profile: Path) -> None:
        commands_in, commands_out = os.pipe()
        replies_in, replies_out = os.pipe()
        # above 4, so that neither dup2 in the trampoline overwrites the other end
        child_in, child_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_in, replies_out))
        os.close(commands_in)
        os.close(replies_out)
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe"]
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(child_in),
                str(child_out),
                executable,
                *flags,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(child_in, child_out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_in)
        os.close(child_out)
        self._commands = os.fdopen(commands_out, "wb", buffering=0)
        self._replies = os.fdopen(replies_in, "rb", buffering=0)
        self._unread = b""
        self._last_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        self._call("Browser.setDownloadBehavior", behavior="deny", eventsEnabled=True)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._process.kill()
        self._process.wait(timeout=REPLY_TIMEOUT)
        self._commands.close()
        self._replies.close()

    def open(self, url: str) -> Visit:
        """Open ``url`` in a new tab; return once it is a download or its page has loaded."""
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._call("Page.enable", session=session)
        navigation = self._call("Page.navigate", session=session, url=url)
        if not navigation.get("isDownload"):
            assert "errorText" not in navigation, navigation
            self._event("Page.loadEventFired", session)
        found = self._call(
            "Runtime.evaluate",
            session=session,
            expression="[location.href, document.documentElement.outerHTML]",
            returnByValue=True,
        )
        location, dom = found["result"]["value"]
        self._call("Target.closeTarget", targetId=target)
        return Visit(bool(navigation.get("isDownload")), location, dom)

    def _call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self._commands.write(json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") != self._last_id:
                self._events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            else:
                result: dict[str, Any] = reply["result"]
                return result

    def _event(self, method: str, session: str) -> dict[str, Any]:
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return event
            self._events.append(self._receive())

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + REPLY_TIMEOUT
        while b"\0" not in self._unread:
            ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
            chunk = self._replies.read(1 << 16) if ready else None
            if not chunk:
                raise RuntimeError("Chromium went silent or exited")
            self._unread += chunk
        message, self._unread = self._unread.split(b"\0", 1)
        received: dict[str, Any] = json.loads(message)
        return received
