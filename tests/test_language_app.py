"""The app in the user's language: the window and its dialogs in Simplified Chinese, the Language setting, and the
restart a new language needs. Offscreen; the real window under X11 is in test_language_app_x11.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL.ImageQt import ImageQt
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QTextLayout
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QMessageBox, QPushButton

from captioner_gui import i18n
from captioner_gui.app import language

from app_helpers import start_app, stop_app
from builders import noise_image
from test_app import isolated_settings  # noqa: F401 (autouse: the app's settings in the test's folder)

ROOT = Path(__file__).resolve().parent.parent


def chinese(text: str) -> bool:
    return any("\u4e00" <= character <= "\u9fff" for character in text)


def drawn_without_tofu(text: str, font) -> bool:
    """Whether every character of `text` has a glyph in the fonts Qt finds for `font` (fallbacks included): a
    character that none has is drawn as an empty box, glyph 0."""
    layout = QTextLayout(text.replace("&", "").replace("\n", " "), font)
    layout.beginLayout()
    layout.createLine()
    layout.endLayout()
    return all(index != 0 for run in layout.glyphRuns() for index in run.glyphIndexes())


@pytest.fixture
def in_chinese(qapp):
    """Our words and Qt's in Simplified Chinese, as main.py chooses them at start-up (conftest puts English back)."""
    i18n.use("zh_CN")
    assert language.install_qt_translations("zh_CN")
    yield
    language.install_qt_translations("en")


@pytest.fixture
def app(qtbot, tiny_mlp, tmp_path):
    from captioner_gui.app.settings import Settings

    running = start_app(qtbot, Settings(model=str(tiny_mlp.folder)), tmp_path / "data", tmp_path / "speech")
    yield running
    stop_app(running)


def test_the_window_in_chinese_shows_and_names_everything_in_chinese(in_chinese, app, qtbot):
    window = app.window
    assert window.windowTitle() == "Captioner 图像描述"
    assert window.open_button.text() == "打开图像(&O)..."
    assert window.drop_area.accessibleName() == "拖放区"
    assert window.result.accessibleName() == "描述"
    assert window.history_list.accessibleDescription() == "以前的描述，最新的在最前面。按 Enter 可以再听一遍。"
    assert [action.text() for action in window.menuBar().actions()] == ["文件(&F)", "编辑(&E)", "朗读(&S)", "查看(&V)"]
    # Every button and menu item, and what a screen reader says for each control, is in Chinese.
    for button in window.findChildren(QPushButton):
        assert chinese(button.text()) and chinese(button.accessibleName()), button.text()
        assert chinese(button.accessibleDescription()), button.accessibleName()
        assert drawn_without_tofu(button.text(), button.font()), button.text()
    for menu in window.menuBar().actions():
        for action in menu.menu().actions():
            assert action.isSeparator() or chinese(action.text()), action.text()
    qtbot.waitUntil(lambda: "就绪" in window.status_label.text(), timeout=30000)
    assert chinese(window.status_label.accessibleDescription())
    assert drawn_without_tofu(window.status_label.text(), window.status_label.font())

    # A message is said in Chinese too, and so is what the history says of a description.
    QApplication.clipboard().clear()
    window.paste()
    assert window.result.toPlainText() == "剪贴板上没有图像。请先复制图像或图像文件，再粘贴。"
    QApplication.clipboard().setImage(ImageQt(noise_image(1, (80, 60))).copy())
    window.paste()
    [answer] = app.described(qtbot)
    assert not answer.error
    assert window.history_list.item(0).text().endswith("，剪贴板")  # "<caption>\n2025-01-01 10:00，剪贴板"


def test_the_settings_in_chinese_and_qt_s_own_buttons(in_chinese, app, qtbot):
    from captioner_gui.app.settings_dialog import SettingsDialog

    dialog = SettingsDialog(app.window.settings, app.speaker, None, app.window)
    try:
        assert dialog.windowTitle() == "设置"
        labels = {label.buddy(): label.text() for label in dialog.findChildren(QLabel) if label.buddy()}
        assert labels[dialog.language] == "语言(&U)："
        assert dialog.language.accessibleName() == "语言"
        # A hotkey's field is named by its label, without the Alt letter and the colon, as Orca says it.
        assert dialog.hotkeys["screen"].accessibleName() == "描述屏幕"
        buttons = {button.text() for button in dialog.findChildren(QAbstractButton)}
        assert {"确定", "取消"} <= buttons, buttons  # Qt's own words, from Qt's translations
        for label in dialog.findChildren(QLabel):
            assert drawn_without_tofu(label.text(), label.font()), label.text()
    finally:
        dialog.deleteLater()


def test_at_200_percent_on_a_laptop_no_words_are_cut(in_chinese, app, qtbot, tmp_path):
    """A laptop's 1280x800 screen at 200% is 640x400 of Qt's pixels: the window and the first-run dialog scroll
    rather than cut their words (the drop area's two lines were cut by a fixed height)."""
    from captioner_gui.app import appearance
    from captioner_gui.app.first_run import ModelSetupDialog

    window = app.window
    window.change_text_size(200 - window.settings.text_size)
    try:
        window.resize(640, 400)
        qtbot.wait(100)
        for button in window.findChildren(QPushButton):
            assert button.height() >= button.sizeHint().height(), button.text()
        dialog = ModelSetupDialog("coco", tmp_path / "models", "", window)
        try:
            dialog.resize(640, 400)
            dialog.show()
            qtbot.wait(100)
            for label in (dialog.intro, dialog.files):
                assert "共约" in dialog.files.text()
                assert label.height() >= label.heightForWidth(label.width()), label.text()
            assert dialog.buttons.geometry().bottom() <= dialog.height()
        finally:
            dialog.deleteLater()
    finally:
        appearance.apply("system", 100)


def test_the_language_box_lists_each_language_by_its_own_name(app, qtbot):
    from captioner_gui.app.settings_dialog import SettingsDialog

    dialog = SettingsDialog(app.window.settings, app.speaker, None, app.window)
    try:
        box = dialog.language
        items = [(box.itemText(index), box.itemData(index)) for index in range(box.count())]
        assert items[0] == ("System language (English)", "")  # the tests' system is English (conftest)
        assert ("简体中文", "zh_CN") in items and ("English", "en") in items
        assert box.currentData() == "" and box.accessibleName() == "Language"
        label = next(label for label in dialog.findChildren(QLabel) if label.buddy() is box)
        assert label.text() == "Lang&uage:"
        dialog.show()
        dialog.activateWindow()
        qtbot.waitUntil(dialog.isActiveWindow)
        QTest.keyClick(dialog, Qt.Key.Key_U, Qt.KeyboardModifier.AltModifier)
        assert QApplication.focusWidget() is box  # Alt+U reaches it
        QTest.keyClick(box, Qt.Key.Key_End)  # the keys a user presses: the last language
        assert box.currentText() == "简体中文"
        box.setCurrentIndex(box.findData("zh_CN"))
        assert dialog.result_settings().language == "zh_CN"
        dialog._restore_defaults()
        assert dialog.result_settings().language == ""
    finally:
        dialog.deleteLater()


def answer_the_restart_question(qtbot, button_text: str, seen: list) -> None:
    """When the question comes, notes its words and presses one of its buttons."""
    def answer():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        seen.append((box.windowTitle(), box.text(), [b.text() for b in box.buttons()]))
        next(b for b in box.buttons() if b.text() == button_text).click()

    QTimer.singleShot(50, answer)


def test_choosing_another_language_offers_to_restart_now(app, qtbot):
    from dataclasses import replace

    from captioner_gui.app.settings import Settings

    seen = []
    spoken = app.speaker.spoken
    answer_the_restart_question(qtbot, "&Restart now", seen)
    with qtbot.waitSignal(app.window.restart_requested, timeout=10000):
        app.window.apply_settings(replace(app.window.settings, language="zh_CN"))
    [(title, text, buttons)] = seen
    assert title == "Language" and "next start" in text
    assert sorted(buttons) == ["&Later", "&Restart now"]
    assert Settings.load().language == "zh_CN"  # saved before the restart, with everything else
    assert i18n.current() == "en"  # the words change at the next start only
    assert app.speaker.wait_until_quiet(30) and app.speaker.spoken > spoken  # said by our own voice too


def test_later_keeps_the_app_running_and_the_same_language_asks_nothing(app, qtbot):
    from dataclasses import replace

    from captioner_gui.app.settings import Settings

    seen, restarts = [], []
    app.window.restart_requested.connect(lambda: restarts.append(True))
    answer_the_restart_question(qtbot, "&Later", seen)
    app.window.apply_settings(replace(app.window.settings, language="zh_CN"))
    assert len(seen) == 1 and restarts == []
    assert Settings.load().language == "zh_CN"

    # English chosen by name while the system is English: the words stay as they are, so nothing to ask.
    app.window.apply_settings(replace(app.window.settings, language="en"))
    qtbot.wait(300)
    assert len(seen) == 1 and restarts == []


def test_a_language_without_a_translation_falls_back_to_the_system_s(tmp_path):
    from captioner_gui.app.settings import Settings

    path = tmp_path / "old.conf"
    path.write_text("[General]\nlanguage=tlh\nrate=200\n", encoding="utf-8")
    settings = Settings.load(QSettings(str(path), QSettings.Format.IniFormat))
    assert settings.language == "" and settings.rate == 200
    assert language.resolve(settings.language) == "en"  # the tests' system language
    path.write_text("[General]\nlanguage=zh_CN\n", encoding="utf-8")
    assert Settings.load(QSettings(str(path), QSettings.Format.IniFormat)).language == "zh_CN"
    assert language.resolve("zh_CN") == "zh_CN"


def test_a_chinese_system_starts_the_app_in_chinese_with_qt_s_words_too(tmp_path):
    """A fresh process on a system set to Chinese (LANG only), with no language chosen in Settings."""
    script = ("from PySide6.QtWidgets import QApplication\n"
              "app = QApplication([])\n"
              "from captioner_gui.app import language\n"
              "from captioner_gui.app.settings_dialog import language_choices\n"
              "print(language_choices()[''])\n"
              "print(language.start_in(''))\n"
              "print(app.translate('QPlatformTheme', 'Cancel'))\n")
    environment = {key: value for key, value in os.environ.items() if key not in ("LANGUAGE", "LC_ALL",
                                                                                  "LC_MESSAGES")}
    environment.update(LANG="zh_CN.UTF-8", QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], env=environment, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["System language (简体中文)", "zh_CN", "取消"]


def test_a_restart_starts_the_same_program_without_the_images(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/somewhere/captioner_gui/app/main.py", "photo.png", "--background"])
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "utf8", "-m", "captioner_gui.app.main", "photo.png",
                                           "--background"])
    assert language.restart_command() == (sys.executable, ["-X", "utf8", "-m", "captioner_gui.app.main"])
    monkeypatch.setattr(sys, "argv", ["/bin/captioner-gui"])
    monkeypatch.setattr(sys, "orig_argv", ["python3", "/bin/captioner-gui"])
    assert language.restart_command("/models") == (sys.executable, ["/bin/captioner-gui", "--models-dir", "/models"])
