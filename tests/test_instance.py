"""The single-instance socket against another local user (run as `nobody` with runuser; the tests run as root),
and the limits on what a client may send and what the app may answer."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from captioner_gui.app import instance
from captioner_gui.app.instance import InstanceError, InstanceServer, send, server_name
from cli_helpers import one_line_error, run_captioner

NOBODY_PYTHON = shutil.which("python3", path=os.defpath)  # one that `nobody` may run (the tests' may be in a home)

CLIENT = """
import json, socket, sys
client = socket.socket(socket.AF_UNIX)
try:
    client.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect": type(exc).__name__})); sys.exit()
client.settimeout(10)
try:
    client.sendall(b'{"command": "describe", "what": "screen"}\\n')
    answer = client.recv(65536)
except OSError as exc:  # the app closed the connection first
    answer = type(exc).__name__.encode()
print(json.dumps({"connect": "ok", "answer": answer.decode(errors="replace")}))
"""

IMPOSTER = """
import json, os, socket, sys, threading
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()  # gone with our pipe
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
listener.listen()
print("listening", flush=True)
while True:
    client, _ = listener.accept()
    client.recv(65536)
    client.sendall(json.dumps({"ok": True, "text": "Whatever nobody wants you to hear."}).encode() + b"\\n")
    client.close()
"""


def as_nobody(script: str, *args, background: bool = False):
    command = ["runuser", "-u", "nobody", "--", NOBODY_PYTHON, "-c", script, *map(str, args)]
    if background:
        # It ends when its stdin closes: killing runuser would leave its child (nobody's python) running.
        return subprocess.Popen(command, cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd="/", capture_output=True, text=True, timeout=60)


def shared_folder() -> Path:
    """A folder like the temporary folder: everyone may write in it."""
    folder = Path(tempfile.mkdtemp(prefix="cap-shared-"))
    folder.chmod(0o1777)
    return folder


@pytest.fixture
def runtime(monkeypatch):
    """The user's private runtime folder (short: a socket's path has a length limit) and a display of its own."""
    folder = Path(tempfile.mkdtemp(prefix="cap-run-"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(folder))
    monkeypatch.setenv("DISPLAY", f":t{os.getpid()}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server(qapp, runtime):
    """The app's server, answering a ping and a describe as the window would; `requests` lists what reached it."""
    listening = InstanceServer(idle_timeout_ms=500)
    listening.requests = []

    def answer(request, reply):
        listening.requests.append(request)
        reply({"ok": True} if request.get("command") == "ping" else {"text": "A dog.", "blank": False})

    listening.requested.connect(answer)
    assert listening.listen()
    yield listening
    listening.close()


def finished(qtbot, process, timeout=30000):
    """Waits for a child process while Qt's event loop turns (the server lives in it)."""
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=timeout)
    return process.stdout.read()


def test_the_socket_is_in_the_users_own_folder(server, runtime):
    path = Path(server_name())
    assert path.parent == runtime and path.exists()
    assert (runtime.stat().st_mode & 0o777) == 0o700


def test_without_xdg_runtime_dir_the_app_makes_a_private_folder_and_refuses_one_another_user_made(qapp, monkeypatch):
    temporary = shared_folder()
    try:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
        monkeypatch.setenv("TMPDIR", str(temporary))
        monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
        folder = instance.socket_folder()
        assert folder == temporary / f"captioner-{os.getuid()}" and (folder.stat().st_mode & 0o777) == 0o700
        folder.rmdir()

        # Another user was first: the folder is theirs, so they could answer in the app's place.
        made = as_nobody("import os, sys; os.mkdir(sys.argv[1], 0o777)", folder)
        assert made.returncode == 0, made.stderr
        with pytest.raises(InstanceError, match="belongs to another user.*delete it"):
            instance.socket_folder()
        assert send({"command": "ping"}) is None  # the client does not talk to whatever listens there

        # An XDG_RUNTIME_DIR that others may enter is not used either.
        open_folder = Path(tempfile.mkdtemp(dir=temporary))
        open_folder.chmod(0o755)
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(open_folder))
        with pytest.raises(InstanceError):
            instance.socket_folder()
    finally:
        shutil.rmtree(temporary)


def test_another_user_cannot_reach_the_app(server, runtime, qtbot):
    path = server_name()
    refused = json.loads(as_nobody(CLIENT, path).stdout)
    assert refused == {"connect": "PermissionError"}  # the folder keeps them out

    # Even with the folder and the socket opened to everyone (by mistake), the app checks who connects.
    runtime.chmod(0o755)
    os.chmod(path, 0o777)
    client = as_nobody(CLIENT, path, background=True)
    result = json.loads(finished(qtbot, client))
    assert result["connect"] == "ok" and "dog" not in result["answer"]
    assert server.requests == []  # nothing was described for them

    ours = subprocess.Popen(["python3", "-c", CLIENT, path], stdout=subprocess.PIPE, text=True)
    assert json.loads(json.loads(finished(qtbot, ours))["answer"]) == {"text": "A dog.", "blank": False}


def test_a_socket_another_user_put_under_the_old_name_has_no_effect(qapp, runtime, qtbot):
    old_name = Path(tempfile.gettempdir()) / f"captioner-{os.environ.get('USER', 'root')}-_t{os.getpid()}"
    old_name.unlink(missing_ok=True)
    imposter = as_nobody(IMPOSTER, old_name, background=True)
    try:
        assert imposter.stdout.readline().strip() == "listening"
        server = InstanceServer()
        server.requested.connect(lambda request, reply: reply({"text": "The real app.", "blank": False}))
        assert server.listen()  # not fooled into "already running"
        client = subprocess.Popen(["python3", "-c", "from PySide6.QtCore import QCoreApplication; "
                                   "from captioner_gui.app.instance import send; app = QCoreApplication([]); "
                                   "print(send({'command': 'describe', 'what': 'screen'})['text'])"],
                                  stdout=subprocess.PIPE, text=True)
        assert finished(qtbot, client).strip() == "The real app."
        server.close()
    finally:
        imposter.stdin.close()
        imposter.wait(timeout=30)
        old_name.unlink(missing_ok=True)


def test_a_socket_that_cannot_be_made_is_a_problem_not_another_app(qapp, runtime):
    """Where no app answers but the socket's name is taken by something else (here a folder), the app must not
    think another one runs, and exit without a window: it is told why, and runs without the socket."""
    blocker = Path(server_name())
    blocker.mkdir()
    (blocker / "something").write_text("")
    server = InstanceServer()
    with pytest.raises(InstanceError, match="cannot be made"):
        server.listen()
    assert send({"command": "ping"}) is None


LIMITS_CLIENT = """
import json, socket, sys, time
def connect():
    client = socket.socket(socket.AF_UNIX)
    client.connect(sys.argv[1])
    client.settimeout(10)
    return client, client.makefile("rb")
def answer(connection):
    line = connection[1].readline()
    return json.loads(line) if line else "closed"
results = {}
idle = connect()
started = time.monotonic()
results["idle"] = [answer(idle), round(time.monotonic() - started, 1)]
long = connect()
long[0].sendall(b"x" * 70000)
results["long"] = [answer(long), answer(long)]
deep = connect()
deep[0].sendall(b"[" * 5000 + b"]" * 5000 + b"\\n" + b'{"command": "describe", "what": [[[[[[[[[[1]]]]]]]]]]}\\n')
results["deep"] = [answer(deep), answer(deep)]
deep[0].sendall(b'{"command": "ping"}\\n')
results["then"] = answer(deep)
print(json.dumps(results))
"""


def test_a_client_is_held_to_a_size_a_depth_and_a_time(server, qtbot):
    client = subprocess.Popen(["python3", "-c", LIMITS_CLIENT, server_name()], stdout=subprocess.PIPE, text=True)
    results = json.loads(finished(qtbot, client))
    assert results["idle"][0] == "closed" and results["idle"][1] < 5  # closed after the idle time (0.5 s here)
    assert results["long"] == [{"error": "The request is too long."}, "closed"]
    unreadable = {"error": "The app could not read this request."}
    assert results["deep"] == [unreadable, unreadable]
    assert results["then"] == {"ok": True}  # the connection still works after a bad message
    assert server.requests == [{"command": "ping"}]


FAKE_APP = """
import socket, sys
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen()
answer = sys.stdin.buffer.read()
print("listening", flush=True)
while True:
    client, _ = listener.accept()
    client.recv(65536)
    client.sendall(answer)
    client.close()
"""


class FakeApp:
    """Another process at the app's address that answers every request with `answer` (bytes); a process, not a
    thread, because Qt's blocking socket calls keep Python's lock."""

    def __init__(self, path: str, answer: bytes):
        self.path = Path(path)
        self.process = subprocess.Popen(["python3", "-c", FAKE_APP, path], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        self.process.stdin.write(answer)
        self.process.stdin.close()
        assert self.process.stdout.readline() == b"listening\n"

    def close(self):
        self.process.kill()
        self.process.wait()
        self.path.unlink()


@pytest.mark.parametrize("answer", [b"not json\n", b'{"text": 5}\n', b"[1, 2]\n", b'{"ok": false}\n',
                                    b"[" * 3000 + b"]" * 3000 + b"\n", b'{"text": "' + b"a" * 70000 + b'"}\n'])
def test_an_answer_that_makes_no_sense_becomes_one_clear_error(qapp, runtime, answer):
    fake = FakeApp(server_name(), answer)
    try:
        reply = send({"command": "describe", "what": "screen"}, timeout_ms=5000)
    finally:
        fake.close()
    assert reply == {"error": instance.BAD_ANSWER}


def test_describe_screen_says_so_in_one_line(runtime):
    fake = FakeApp(server_name(), b'{"text": ["a", "list"]}\n')
    try:
        result = run_captioner("describe-screen", "--no-speech", timeout=120)
    finally:
        fake.close()
    line = one_line_error(result)
    assert line.startswith("captioner: The running app gave an answer that makes no sense")
    assert "start captioner-gui again" in line

    fake = FakeApp(server_name(), b'{"error": "Two\\nlines."}\n')  # an error, too, is one line
    try:
        result = run_captioner("describe-screen", "--no-speech", timeout=120)
    finally:
        fake.close()
    assert one_line_error(result) == "captioner: Two lines."


# ------------------------------------------------------------------------------------------------- floods and quitting

FLOOD = """
import json, os, sys
from captioner_gui.app.instance import send
count = int(sys.argv[1])
answers_read, answers_write = os.pipe()
started_read, started_write = os.pipe()
children = []
for index in range(count):
    pid = os.fork()
    if pid == 0:  # one `captioner describe-screen`
        from PySide6.QtCore import QCoreApplication
        application = QCoreApplication([])
        os.write(started_write, b".")
        answer = send({"command": "describe", "what": "screen"}, timeout_ms=60000)
        os.write(answers_write, (json.dumps(answer) + "\\n").encode())
        os._exit(0)
    children.append(pid)
os.close(answers_write)
os.close(started_write)
started = b""
while len(started) < count:
    started += os.read(started_read, count)
print("all started", flush=True)
for pid in children:
    os.waitpid(pid, 0)
with os.fdopen(answers_read) as answers:
    print(json.dumps([json.loads(line) for line in answers]))
"""


def test_a_flood_of_clients_wait_their_turn_and_none_runs_by_itself(qapp, runtime, qtbot):
    """100 `describe-screen` at once while the app is busy: its queue of connections is full (1 here, 50 in the
    app), and a client that found it full used to run by itself (a second model, no history, its own voice). Each
    now waits its turn and gets the app's answer."""
    server = InstanceServer()
    server.server.setListenBacklogSize(1)
    server.requested.connect(lambda request, reply: reply({"text": "A dog.", "blank": False}))
    assert server.listen()
    try:
        flood = subprocess.Popen(["python3", "-c", FLOOD, "100"], stdout=subprocess.PIPE, text=True)
        assert flood.stdout.readline() == "all started\n"  # meanwhile the app's event loop is held, as when busy
        subprocess.run(["sleep", "1.5"])  # longer than a client waited for the queue to have room
        answers = json.loads(finished(qtbot, flood, timeout=120000))
    finally:
        server.close()
    assert answers == [{"text": "A dog.", "blank": False}] * 100


FULL_APP = """
import socket, sys, time
listener = socket.socket(socket.AF_UNIX)
listener.bind(sys.argv[1])
listener.listen(0)
waiting = []
while True:  # the queue of connections filled up, and nothing is accepted
    client = socket.socket(socket.AF_UNIX)
    client.setblocking(False)
    try:
        client.connect(sys.argv[1])
    except BlockingIOError:
        break
    waiting.append(client)
print("full", flush=True)
sys.stdin.read()
"""


def test_an_app_too_busy_to_take_a_client_is_said_in_one_line(runtime):
    """An app whose queue of connections stays full: the client waits a while, then says the app is busy (it
    used to run by itself after half a second)."""
    app = subprocess.Popen(["python3", "-c", FULL_APP, server_name()], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline() == "full\n"
        assert send({"command": "describe", "what": "screen"}, busy_ms=300) == {"error": instance.APP_BUSY}
        result = run_captioner("describe-screen", "--no-speech", timeout=120)
    finally:
        app.stdin.close()
        app.wait()
    assert one_line_error(result) == "captioner: The app is busy with other requests; try again in a moment."


QUITTING_APP = """
from PySide6.QtCore import QCoreApplication, QTimer
from captioner_gui.app.instance import InstanceServer
application = QCoreApplication([])
server = InstanceServer()

def answer(request, reply):
    if request["command"] == "describe":  # never answered: the user quits while it is being described
        QTimer.singleShot(100, application.quit)
    else:
        reply({"ok": True})

server.requested.connect(answer)
assert server.listen()
print("listening", flush=True)
application.exec()
server.close()  # as the app does on its way out
"""


def test_quitting_tells_a_waiting_client_and_says_nothing_else(runtime):
    """A client waiting for its description when the user quits the app hears that the app quit (not that it did
    not answer in time), and the app leaves without a traceback (a deleted QLocalSocket's, every time)."""
    app = subprocess.Popen(["python3", "-c", QUITTING_APP], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        assert app.stdout.readline() == "listening\n"
        answer = send({"command": "describe", "what": "screen"}, timeout_ms=30000)
        _output, errors = app.communicate(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
    assert answer == {"error": instance.APP_QUIT}
    assert app.returncode == 0 and "Traceback" not in errors, errors

    fake = FakeApp(server_name(), b"")  # an app that closes the connection with no answer: it quit, or crashed
    try:
        assert send({"command": "describe", "what": "screen"}, timeout_ms=30000) == {"error": instance.APP_QUIT}
    finally:
        fake.close()
