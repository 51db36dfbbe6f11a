"""One running app per user: a QLocalServer that a second `captioner-gui` and `captioner describe-screen` reach.

The protocol is one JSON object per line. Requests: {"command": "show"} or {"command": "describe",
"what": "screen"|"window"|"region"|"clipboard", "region": [x, y, w, h]?, "all_monitors": bool?}. The app answers
a describe with {"text": ...} or {"error": ...} once the description is done (the socket stays open until then).
Only QtCore and QtNetwork are used, so the command line can be a client without starting a GUI.
"""

from __future__ import annotations

import getpass
import json
import os
import re

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket


def server_name() -> str:
    """Per user and per display, so that two people on one machine, or two desktop sessions, each have their app."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "user"
    display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY") or ""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"captioner-{user}{'-' + display if display else ''}")


def send(request: dict, timeout_ms: int = 60000, connect_ms: int = 500) -> dict | None:
    """Sends a request to the running app and waits for its answer. None when no app runs."""
    socket = QLocalSocket()
    socket.connectToServer(server_name())
    if not socket.waitForConnected(connect_ms):
        return None
    socket.write((json.dumps(request) + "\n").encode())
    socket.flush()
    socket.waitForBytesWritten(connect_ms)
    buffer = b""
    while b"\n" not in buffer:
        if not socket.waitForReadyRead(timeout_ms):
            return {"error": "The running app did not answer in time."}
        buffer += bytes(socket.readAll().data())
    socket.disconnectFromServer()
    try:
        return json.loads(buffer.split(b"\n", 1)[0])
    except ValueError:
        return {"error": "The running app gave an answer this command cannot read."}


class InstanceServer(QObject):
    """Listens for other processes. `requested` carries (request dict, reply function)."""

    requested = Signal(dict, object)

    def __init__(self):
        super().__init__()
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._connected)
        self._buffers: dict[QLocalSocket, bytes] = {}

    def listen(self) -> bool:
        """Starts listening; False when another instance already does.

        Asked first, because listening with socket options can take the name over from a live server."""
        if send({"command": "ping"}, timeout_ms=2000) is not None:
            return False
        QLocalServer.removeServer(server_name())  # a stale socket left by a crash
        return self.server.listen(server_name())

    def _connected(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            self._buffers[socket] = b""
            socket.readyRead.connect(lambda socket=socket: self._read(socket))
            socket.disconnected.connect(lambda socket=socket: self._gone(socket))

    def _gone(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        socket.deleteLater()

    def _read(self, socket: QLocalSocket) -> None:
        buffer = self._buffers.get(socket, b"") + bytes(socket.readAll().data())
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                continue
            self.requested.emit(request, lambda answer, socket=socket: _reply(socket, answer))
        self._buffers[socket] = buffer


def _reply(socket: QLocalSocket, answer: dict) -> None:
    try:
        if socket.state() == QLocalSocket.LocalSocketState.ConnectedState:
            socket.write((json.dumps(answer) + "\n").encode())
            socket.flush()
    except RuntimeError:
        pass  # the client went away and Qt already deleted the socket
