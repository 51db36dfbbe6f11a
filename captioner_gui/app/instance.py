"""One running app per user: a QLocalServer that a second `captioner-gui` and `captioner describe-screen` reach.

The protocol is one JSON object per line. Requests: {"command": "show"}, {"command": "open", "paths": [...]}
(a second `captioner-gui` hands over its image files, absolute paths) or {"command": "describe",
"what": "screen"|"window"|"region"|"clipboard"|"text" (a Target), "region": [x, y, w, h]?, "all_monitors": bool?}.
The app answers a describe with {"text": ...} or {"error": ...} once the description is done (the socket stays open
until then); a request still unanswered when the app quits is answered with the error APP_QUIT.
A client never takes the app's place while it runs: where the app's queue of connections is full (a flood of
requests), the client waits its turn for BUSY_WAIT_MS, then says that the app is busy.
Only QtCore and QtNetwork are used, so the command line can be a client without starting a GUI.

Only the user's own processes may talk to it: a description of the screen is private, and a request makes the app
take a picture of the screen. So the socket lives in a folder only the user can enter (XDG_RUNTIME_DIR, else a
0700 folder of ours in the temporary folder), both ends check who is at the other end where the system tells
(Linux: SO_PEERCRED; macOS: the folder's owner and mode stand for getpeereid), and messages are bounded in size,
depth and time. On Windows the socket is a named pipe whose access list admits the user only (UserAccessOption).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket as pysocket
import stat
import struct
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from captioner_gui.i18n import N_, _

MAX_MESSAGE = 64 * 1024  # bytes in one request or answer
MAX_DEPTH = 8  # nesting of JSON objects and lists in one message (the real ones have 2)
IDLE_TIMEOUT_MS = 10_000  # a connection that sends no whole request for this long is closed
BUSY_WAIT_MS = 10_000  # how long a client waits for a turn where the app's queue of connections is full
BUSY_RETRY_S = 0.05  # between two tries meanwhile (Qt's own retrying spins on a CPU core)
APP_QUIT = N_("The app quit before it answered.")
APP_BUSY = N_("The app is busy with other requests; try again in a moment.")
BAD_ANSWER = N_("The running app gave an answer that makes no sense; quit it (Ctrl+Q in its window) and start "
                "captioner-gui again.")


class InstanceError(Exception):
    """The place of the socket is not safe to use; the message says what to do."""


def socket_folder() -> Path:
    """A folder that only this user can enter: XDG_RUNTIME_DIR when it is one, else `captioner-UID` in the
    temporary folder, made 0700. Raises InstanceError when that one belongs to someone else or others may enter it
    (another user could then answer in the app's place)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _private_folder_problem(Path(runtime)) is None:
        return Path(runtime)
    folder = Path(tempfile.gettempdir()) / f"captioner-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise InstanceError(_("The app's folder {folder} could not be made ({problem}).").format(
            folder=folder, problem=exc.strerror)) from None
    problem = _private_folder_problem(folder)
    if problem is not None:
        raise InstanceError(_("{folder} {problem}, so other users could reach the app: delete it (or set "
                              "XDG_RUNTIME_DIR to a folder of yours), then start captioner-gui again.").format(
            folder=folder, problem=problem))
    return folder


def _private_folder_problem(folder: Path) -> str | None:
    """Why `folder` is not private to this user, or None when it is (not a link, ours, mode 0700 or stricter)."""
    try:
        info = folder.lstat()
    except OSError:
        # Translators: these four follow the name of a folder ("/tmp/captioner-1000 cannot be read").
        return _("cannot be read")
    if not stat.S_ISDIR(info.st_mode):
        return _("is not a folder")
    if info.st_uid != os.getuid():
        return _("belongs to another user")
    if info.st_mode & 0o077:
        return _("may be entered by other users")
    return None


def server_name() -> str:
    """Per user and per display, so that two people on one machine, or two desktop sessions, each have their app.
    On Unix a path in `socket_folder()`; on Windows a pipe name (per user by its access list)."""
    display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY") or ""
    suffix = re.sub(r"[^A-Za-z0-9_.-]", "_", f"-{display}") if display else ""
    if sys.platform == "win32":
        try:
            user = getpass.getuser()
        except Exception:
            user = "user"
        return re.sub(r"[^A-Za-z0-9_.-]", "_", f"captioner-{user}") + suffix
    return str(socket_folder() / f"captioner{suffix}.socket")


def peer_uid(socket: QLocalSocket) -> int | None:
    """The user id of the process at the other end of a connected socket (Linux's SO_PEERCRED), or None where the
    system cannot tell this way (macOS and Windows rely on the folder and the pipe's access list)."""
    if not hasattr(pysocket, "SO_PEERCRED"):
        return None
    descriptor = int(socket.socketDescriptor())
    if descriptor < 0:
        return None
    with pysocket.fromfd(descriptor, pysocket.AF_UNIX, pysocket.SOCK_STREAM) as duplicate:  # Qt keeps its own
        credentials = duplicate.getsockopt(pysocket.SOL_SOCKET, pysocket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return uid


def _is_ours(socket: QLocalSocket) -> bool:
    uid = peer_uid(socket)
    return uid is None or uid == os.getuid()


def parse_message(line: bytes) -> dict | None:
    """One message as a dict, or None when it is too long, too deep, not JSON or not an object."""
    if len(line) > MAX_MESSAGE:
        return None
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or _depth(message) > MAX_DEPTH:
        return None
    return message


def _depth(value) -> int:
    deepest, waiting = 0, [(value, 1)]
    while waiting:
        item, depth = waiting.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            waiting.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def answer_makes_sense(answer: dict, command: str) -> bool:
    """Whether an answer has the shape the command expects: {"error": text}, a describe's {"text": text, ...},
    or {"ok": true}."""
    if "error" in answer:
        return isinstance(answer["error"], str) and bool(answer["error"].strip())
    if command == "describe":
        return isinstance(answer.get("text"), str) and isinstance(answer.get("blank", False), bool)
    return answer.get("ok") is True


def send(request: dict, timeout_ms: int = 60000, connect_ms: int = 500, busy_ms: int = BUSY_WAIT_MS) -> dict | None:
    """Sends a request to the running app and waits for its answer. None when no app of this user runs; the error
    APP_BUSY when the app runs but had no room for us for `busy_ms`."""
    try:
        name = server_name()
    except InstanceError:
        return None  # no app of ours can listen there either
    socket = QLocalSocket()
    give_up = time.monotonic() + busy_ms / 1000
    socket.connectToServer(name)
    # Still connecting: the app listens, but its queue of connections is full (a flood of requests). Its turn
    # comes when the app takes the connections waiting; never in its place, a second model and a second voice.
    while socket.state() == QLocalSocket.LocalSocketState.ConnectingState:
        socket.abort()
        if time.monotonic() > give_up:
            return {"error": _(APP_BUSY)}
        time.sleep(BUSY_RETRY_S)
        socket.connectToServer(name)
    if not socket.waitForConnected(connect_ms):  # no socket, or one that nobody listens at (left by a crash)
        return None
    if not _is_ours(socket):
        socket.abort()
        return None
    socket.write((json.dumps(request) + "\n").encode())
    socket.flush()
    socket.waitForBytesWritten(connect_ms)
    buffer = _read_line(socket, timeout_ms)
    closed = socket.state() != QLocalSocket.LocalSocketState.ConnectedState
    socket.abort()
    if buffer is None:
        return {"error": _(APP_QUIT) if closed else _("The running app did not answer in time.")}
    answer = parse_message(buffer)
    if answer is None or not answer_makes_sense(answer, str(request.get("command"))):
        return {"error": _(BAD_ANSWER)}
    if "error" in answer:
        answer["error"] = " ".join(answer["error"].split())  # one line, whatever the app sent
    return answer


def _read_line(socket: QLocalSocket, timeout_ms: int) -> bytes | None:
    """The first line the other end sends (at most MAX_MESSAGE bytes and a little), or None when none came."""
    buffer = b""
    while b"\n" not in buffer and len(buffer) <= MAX_MESSAGE:
        buffer += bytes(socket.readAll().data())  # what arrived already, even if the other end has closed
        if b"\n" in buffer or len(buffer) > MAX_MESSAGE:
            break
        if not socket.waitForReadyRead(timeout_ms):
            buffer += bytes(socket.readAll().data())
            if b"\n" not in buffer:
                return None
    return buffer.split(b"\n", 1)[0]


class InstanceServer(QObject):
    """Listens for other processes. `requested` carries (request dict, reply function)."""

    requested = Signal(dict, object)

    def __init__(self, idle_timeout_ms: int = IDLE_TIMEOUT_MS):
        super().__init__()
        self.idle_timeout_ms = idle_timeout_ms
        self.server = QLocalServer(self)
        # On Windows this gives the pipe an access list for this user only; on Unix the socket file 0700.
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._connected)
        self._buffers: dict[QLocalSocket, bytes] = {}
        self._timers: dict[QLocalSocket, QTimer] = {}
        self._unanswered: dict[QLocalSocket, int] = {}  # requests passed on and not answered yet

    def listen(self) -> bool:
        """Starts listening; False when another instance already does (it answered). Raises InstanceError when the
        socket's folder is not private (the message says what to do), or when the socket cannot be made.

        Asked first, because listening with socket options can take the name over from a live server."""
        name = server_name()
        if send({"command": "ping"}, timeout_ms=2000) is not None:
            return False
        QLocalServer.removeServer(name)  # a stale socket left by a crash
        if not self.server.listen(name):  # no app answered, yet the name is taken: this app runs without it
            raise InstanceError(_("its socket {name} cannot be made ({problem}).").format(
                name=name, problem=self.server.errorString()))
        return True

    def close(self) -> None:
        """Stops listening and removes the socket file. A client still waiting for an answer is told that the app
        quit, and every connection is closed now: not when Qt deletes the sockets at exit, when Python can no
        longer hear of it."""
        self.server.close()
        for socket in list(self._buffers):
            if self._unanswered.get(socket):
                _reply(socket, {"error": _(APP_QUIT)})
                socket.waitForBytesWritten(100)
            self._timers[socket].stop()
            socket.readyRead.disconnect()
            socket.disconnected.disconnect()
            socket.abort()
        self._buffers.clear()
        self._timers.clear()
        self._unanswered.clear()

    def _connected(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            if not _is_ours(socket):  # another user: not a word
                socket.abort()
                socket.deleteLater()
                continue
            self._buffers[socket] = b""
            timer = QTimer(socket)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda socket=socket: socket.abort())
            timer.start(self.idle_timeout_ms)
            self._timers[socket] = timer
            socket.readyRead.connect(lambda socket=socket: self._read(socket))
            socket.disconnected.connect(lambda socket=socket: self._gone(socket))

    def _gone(self, socket: QLocalSocket) -> None:
        self._buffers.pop(socket, None)
        self._timers.pop(socket, None)
        self._unanswered.pop(socket, None)
        socket.deleteLater()

    def _read(self, socket: QLocalSocket) -> None:
        if socket not in self._buffers:
            return
        buffer = self._buffers[socket] + bytes(socket.readAll().data())
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = parse_message(line)
            if request is None:
                _reply(socket, {"error": _("The app could not read this request.")})
                continue
            self._timers[socket].stop()  # a description may take long; the reply restarts the clock
            self._unanswered[socket] = self._unanswered.get(socket, 0) + 1
            self.requested.emit(request, lambda answer, socket=socket: self._answer(socket, answer))
        if len(buffer) > MAX_MESSAGE:
            _reply(socket, {"error": _("The request is too long.")})
            socket.disconnectFromServer()
            return
        if socket in self._buffers:  # not gone meanwhile
            self._buffers[socket] = buffer

    def _answer(self, socket: QLocalSocket, answer: dict) -> None:
        if socket not in self._buffers:
            return  # gone, or the app is quitting and told it so
        _reply(socket, answer)
        self._unanswered[socket] = max(0, self._unanswered[socket] - 1)
        if not self._unanswered[socket]:
            self._timers[socket].start(self.idle_timeout_ms)


def _reply(socket: QLocalSocket, answer: dict) -> None:
    try:
        if socket.state() == QLocalSocket.LocalSocketState.ConnectedState:
            socket.write((json.dumps(answer) + "\n").encode())
            socket.flush()
    except RuntimeError:
        pass  # the client went away and Qt already deleted the socket
