"""`captioner-gui`: starts the window at once, loads the model in the worker thread, offers the first-run
download when the model is missing. Image files given on the command line are described once the model is ready."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QSocketNotifier, Qt
from PySide6.QtWidgets import QApplication

from captioner_gui import __version__, i18n
from captioner_gui.i18n import _


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="captioner-gui",
                                     description=_("Hear what is in an image or on your screen."))
    parser.add_argument("images", nargs="*", help=_("image files to describe at start"))
    parser.add_argument("--model", help=_("model name, folder or manifest (saved as the setting)"))
    parser.add_argument("--models-dir", type=Path, help=_("the models folder (default: CAPTIONER_MODELS, else the "
                                                          "user's data folder)"))
    parser.add_argument("--background", action="store_true",
                        help=_("start without showing the window (in the tray, or minimized where there is no "
                               "tray); for starting with the computer: the hotkeys work at once"))
    parser.add_argument("--version", action="version", version=f"captioner {__version__}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    QCoreApplication.setOrganizationName("captioner")
    QCoreApplication.setApplicationName("captioner")
    from . import language
    from .settings import Settings

    settings = Settings.load()
    chosen = language.resolve(settings.language)
    i18n.use(chosen)  # the help and the messages below in the user's language too
    i18n.translate_argparse()  # argparse's own words ("usage:", its errors), as the CLI says them
    args = parse_args(argv)
    app = QApplication(sys.argv[:1])
    language.start_in(chosen)  # our words and Qt's, before any widget is built
    # Translators: the app's name, in its window's title and the tray. Keep "Captioner"; you may add a few words.
    app.setApplicationDisplayName(_("Captioner"))
    from .portal import APP_ID

    app.setDesktopFileName(APP_ID)  # the app's id for Wayland desktops and their portals
    app.setQuitOnLastWindowClosed(True)

    from .instance import InstanceError, InstanceServer, send

    instance = InstanceServer()
    instance_problem = None
    try:
        if not instance.listen():  # the app runs already: it shows its window (and describes our images)
            return hand_over(args.images, send)
    except InstanceError as exc:  # the app works, but `captioner describe-screen` cannot reach it
        instance_problem = _("captioner describe-screen cannot reach the app: {problem}").format(problem=exc)
        print(instance_problem, file=sys.stderr)

    from captioner_gui.engine import default_models_dir

    from .history import History
    from .hotkeys import Hotkeys
    from .speech import Speaker, recording_dir
    from .window import MainWindow
    from .worker import CaptionWorker

    if args.model:
        settings.model = args.model
        settings.save()
    models_dir = args.models_dir or default_models_dir()
    speaker = Speaker(record_dir=recording_dir())
    speaker.configure(settings.voice, settings.rate, settings.volume / 100)
    worker = CaptionWorker()
    window = MainWindow(settings, worker, speaker, History(), models_dir)
    speaker.on_error = window.speech_problem.emit  # called in the speech thread; the signal crosses to the GUI

    window.model_missing.connect(window.get_model, Qt.ConnectionType.QueuedConnection)
    instance.requested.connect(window.handle_remote)
    hotkeys = Hotkeys()
    hotkeys.pressed.connect(window.on_hotkey)
    hotkeys.problem.connect(window.tell)
    window.settings_changed.connect(lambda: hotkeys.register(window.settings.hotkeys))
    if args.images:  # described once a model is ready (after a first-run download, if need be)
        window.describe_when_ready([str(Path(p)) for p in args.images])
    worker.start()
    window.load_model()
    if not args.background:
        window.show()
    elif window.tray is None:
        window.showMinimized()
    window.drop_area.setFocus()
    hotkeys.register(settings.hotkeys)
    if instance_problem:
        window.tell(instance_problem)
    from .settings import linked_settings_problem

    if linked_settings_problem():
        window.tell(linked_settings_problem())
    quit_on_signals(app, window.close)
    restarting = False

    def restart() -> None:  # a new language: the user chose to start again now
        nonlocal restarting
        restarting = True
        window.close()
        app.quit()

    window.restart_requested.connect(restart)
    try:
        status = app.exec()
    finally:
        instance.close()
        hotkeys.unregister()
        stopped = worker.stop()
        speaker.close()
    if restarting:  # only now: the new app must find no other one running, and its hotkeys free
        start_again(str(models_dir.resolve()) if args.models_dir else None)
    if not stopped:
        # The model is still loading (a first load can take a minute) and Python cannot interrupt it; Qt would
        # abort when the running thread is destroyed at exit. Settings and history are on disk: leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    # Python's last garbage collection at exit walks every object that torch and the models made: 3 s of a
    # 2-core CPU, after the window had gone. What is left is freed with the process instead.
    gc.freeze()
    return status


def start_again(models_dir: str | None) -> None:
    """Starts a new app (in the language now saved in the settings), this one having let go of its socket and
    hotkeys. Settings and history are already on disk."""
    from PySide6.QtCore import QProcess

    from .language import restart_command

    program, arguments = restart_command(models_dir)
    started, _pid = QProcess.startDetached(program, arguments)
    if not started:
        print(_("captioner-gui could not start again: start it yourself."), file=sys.stderr)


def hand_over(images: list[str], send) -> int:
    """A second `captioner-gui`: the running app describes our images (or just shows its window)."""
    if images:
        answer = send({"command": "open", "paths": [str(Path(p).resolve()) for p in images]}, timeout_ms=5000)
        if answer is None or "error" in answer:
            problem = (answer or {}).get("error") or _("The running app did not answer.")
            print(f"captioner-gui: {problem}", file=sys.stderr)
            return 1
        print(_("captioner-gui is already running; it describes the images there."), file=sys.stderr)
        return 0
    send({"command": "show"}, timeout_ms=5000)
    print(_("captioner-gui is already running; its window was brought to the front."), file=sys.stderr)
    return 0


def quit_on_signals(app: QApplication, close) -> None:
    """SIGTERM (a logout, `kill`) and SIGINT (Ctrl+C) quit as Ctrl+Q does, so that the socket and the speech files
    are removed on the way out. Python runs its handlers only when it gets control, and Qt's event loop may wait in
    C for long: a byte on a wake-up socket that Qt watches gives Python that moment."""
    wake_reader, wake_writer = socket.socketpair()
    for end in (wake_reader, wake_writer):
        end.setblocking(False)
    signal.set_wakeup_fd(wake_writer.fileno())
    notifier = QSocketNotifier(wake_reader.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(lambda *_: wake_reader.recv(64))  # the handler itself has run by now

    def quit_now(*_):
        close()
        app.quit()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, quit_now)
    app._wake_up_sockets = (wake_reader, wake_writer)  # kept open as long as the app


if __name__ == "__main__":
    sys.exit(main())
