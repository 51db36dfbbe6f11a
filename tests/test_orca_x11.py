"""The app as an Orca user hears it: a process named orca runs, so the app speaks through Speech Dispatcher (here a
stand-in spd-say that notes what it is asked) while its window is in the background, and announces what it says
(AT-SPI, read by a listener that runs before the app starts, as Orca does) while the window has the focus."""

import os
import subprocess
import time

import test_accessibility_x11
from atspi import events, nodes
from screens import text_page
from test_accessibility_x11 import announcements, start, status_text
from test_app_x11 import history, quit_gui
from test_screen_x11 import show_picture
from x11 import gui_command, wait_for

desktop = test_accessibility_x11.desktop  # Xvfb with openbox, and a private accessibility bus


def fake_orca(tmp_path):
    """A process named orca, and spd-say first in the PATH, writing each call's arguments to a log."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "spd-say.log"
    (folder / "spd-say").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n')
    (folder / "orca").write_text("#!/bin/sh\nwhile true; do sleep 1; done\n")  # a loop: stays named orca
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return subprocess.Popen([str(folder / "orca")]), f"{folder}{os.pathsep}{os.environ['PATH']}", log


def heard_after(log, count: int) -> list[dict]:
    return announcements(log)[count:]


def spd_say(log) -> list[str]:
    return log.read_text().splitlines() if log.is_file() else []


def test_every_key_is_heard_once_whole_and_in_order_with_orca_running(desktop, tmp_path, tiny_mlp):
    xserver, bus = desktop
    events_log = tmp_path / "events.jsonl"
    bus.watch("captioner", events_log)  # before the app starts, as Orca
    orca, path, said = fake_orca(tmp_path)
    page = text_page(14, lines=8, seed=3, screen=(700, 500))
    page_file = tmp_path / "page.png"
    page.image.save(page_file)
    settings = tmp_path / "config" / "captioner" / "captioner.conf"  # the screen's text kept, to check it below
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text("[General]\nkeep_screen_text=true\n")
    gui, window = start(bus, xserver, "--model", tiny_mlp.folder, PATH=path)
    try:
        wait_for(lambda: "Ready" in status_text(bus.tree("captioner")), 60, "Ready")
        subprocess.run([*gui_command(), str(page_file)], env={**bus.env, "PATH": path}, check=True, timeout=60)
        [entry] = wait_for(lambda: history(tmp_path), 60, "the page described")
        short = wait_for(lambda: [e["value"] for e in announcements(events_log) if "page.png" not in e["value"]
                                  and e["value"].startswith(entry["text"].split("\n")[0])], 20, "its announcement")
        time.sleep(1)
        seen, called = len(announcements(events_log)), len(spd_say(said))
        print("described:", short, spd_say(said))

        # F5, F6, F6 again, with the window active: announced (the screen reader reads the window's
        # announcements), and never handed to Speech Dispatcher as well.
        xserver.keys(window, "F5")
        [again] = wait_for(lambda: heard_after(events_log, seen), 10, "F5 heard")
        assert again["value"] == short[-1], again
        xserver.keys(window, "F6")
        [more] = wait_for(lambda: heard_after(events_log, seen + 1), 10, "F6 heard")
        assert more["value"].split(".")[0] in entry["text"] and more["value"] != again["value"], more
        xserver.keys(window, "F6")
        [nothing] = wait_for(lambda: heard_after(events_log, seen + 2), 10, "F6 again heard")
        assert nothing["value"] == "Nothing more."
        print("F5:", again["value"], "\nF6:", more["value"], "\nF6 again:", nothing["value"])

        # Alt+H selects the newest entry; Enter says it is the history's, then its first lines one by one.
        xserver.keys(window, "alt+h")
        time.sleep(1)
        [history_list] = [n for n in nodes(bus.tree("captioner")) if n["role"] == "list" and n["name"] == "History"]
        assert "focused" in history_list["states"]
        [selected] = [item for item in history_list["children"] if "selected" in item["states"]]
        assert selected["name"].startswith(entry["text"].split("\n")[0]), selected
        print("Alt+H:", selected["name"])
        xserver.keys(window, "Return")
        [entered] = wait_for(lambda: heard_after(events_log, seen + 3), 10, "Enter heard")
        assert entered["value"].startswith("From the history, "), entered
        assert entered["value"].split(": ", 1)[1].startswith(entry["text"].split("\n")[0]), entered
        print("Enter:", entered["value"])
        assert spd_say(said)[called:] == [], spd_say(said)[called:]  # all of it through the announcements

        # "Read the text" of another window with more than three lines: through Speech Dispatcher, the first lines
        # at once and the rest queued behind them, never cancelling them.
        viewer, viewer_window = show_picture(xserver, page_file, 300, 100)
        try:
            xserver.run("xdotool", "windowactivate", "--sync", viewer_window)
            time.sleep(0.5)
            xserver.run("xdotool", "key", "ctrl+alt+shift+t")
            wait_for(lambda: len(history(tmp_path)) == 2, 60, "the text read")
            time.sleep(2)
        finally:
            viewer.terminate()
        lines = spd_say(said)[called:]
        print("Read the text, spd-say:", *lines, sep="\n  ")
        first = next(i for i, line in enumerate(lines) if " -- picture. " in line)  # after "Describing..." if slow
        assert first > 0 and lines[first - 1] == "--cancel", lines  # the new request cuts off what was said
        assert len(lines) > first + 1 and "--cancel" not in lines[first:], lines  # the rest queued, not cutting
        read = " ".join(line.split(" -- ", 1)[1] for line in lines[first:])
        assert read.startswith("picture. ") and read.count("picture") == 1, read  # the title once
        assert history(tmp_path)[-1]["text"].split("\n")[-1] in read  # to its last line
    finally:
        orca.kill()
        orca.wait()
        quit_gui(xserver, window, gui)


def test_settings_are_heard_without_their_alt_letters_and_a_hotkey_field_says_its_key(desktop, tmp_path, tiny_mlp):
    xserver, bus = desktop
    events_log = tmp_path / "events.jsonl"
    bus.watch("captioner", events_log)  # running when Settings opens, as Orca is
    gui, window = start(bus, xserver, "--model", tiny_mlp.folder)
    try:
        wait_for(lambda: "Ready" in status_text(bus.tree("captioner")), 60, "Ready")
        xserver.keys(window, "ctrl+comma")
        dialog = xserver.wait_for_window("^Settings$")
        time.sleep(1)
        before = len(events(events_log))
        xserver.keys(dialog, *["Tab"] * 30)
        time.sleep(1)
        focused = [e for e in events(events_log)[before:] if e["type"].startswith("focus")
                   or (e["type"].endswith("focused") and e["detail1"] == 1)]
        names = [(e["role"], e["name"], e["labelled_by"]) for e in focused]
        print(*names, sep="\n")
        assert not [n for n in names if "&" in n[1] or any("&" in label for label in n[2])], names
        [screen_field] = {(e["role"], e["name"], e["text"]) for e in focused if e["name"] == "Describe the screen"}
        assert screen_field == ("text", "Describe the screen", "Ctrl+Alt+Shift+S")

        # A new key is heard as soon as it is pressed: the focused field's text is the new key.
        xserver.keys(dialog, "alt+n")
        time.sleep(0.5)
        before = len(events(events_log))
        xserver.keys(dialog, "ctrl+alt+shift+j")
        time.sleep(1)
        changed = [e for e in events(events_log)[before:] if e["type"].startswith("object:text-changed:insert")]
        print("after Ctrl+Alt+Shift+J:", changed)
        assert changed and changed[-1]["name"] == "Describe the screen" and changed[-1]["value"] == "Ctrl+Alt+Shift+J"
    finally:
        gui.kill()  # the dialog is open, and Escape in a hotkey field is a key to record
        gui.wait(10)


DIALOG_PROGRAM = """import sys
from PySide6.QtWidgets import QApplication, QDialog, QMainWindow
app = QApplication([])
main = QMainWindow()
main.setWindowTitle("Editor")
main.show()
if sys.argv[1] == "dialog":
    dialog = QDialog(main)
    dialog.setWindowTitle("Save as")
    dialog.show()
app.exec()
"""


def test_the_active_window_is_known_to_be_a_dialog(desktop, monkeypatch):
    """Under openbox, a program's dialog is taken as a dialog (then said "Dialog Save as"), its main window not."""
    import sys

    from captioner_gui.app import capture
    from captioner_gui.engine.options import Target

    xserver, _bus = desktop
    monkeypatch.setenv("DISPLAY", xserver.display)
    for shown, title, dialog in (("dialog", "Save as", True), ("main", "Editor", False)):
        program = subprocess.Popen([sys.executable, "-c", DIALOG_PROGRAM, shown], env=xserver.env())
        try:
            xserver.wait_for_window(f"^{title}$")
            time.sleep(1)  # openbox has given it the focus
            taken = capture.take(Target.WINDOW)
            assert (taken.title, taken.dialog) == (title, dialog)
        finally:
            program.kill()
            program.wait()
