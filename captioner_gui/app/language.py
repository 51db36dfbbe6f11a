"""The app's language: chosen once at start-up (from Settings, else the system's), before any widget is built, and
changed by starting the app again.

Two layers, one way each: our own words go through gettext (captioner_gui.i18n); Qt's own words (file dialogs,
message box buttons, key names, context menus) come from Qt's translations (qtbase_<language>.qm, shipped with
PySide6), loaded here for the same language.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from captioner_gui import i18n


def system_language() -> str:
    """The language of the user's system that we have a translation for, else English: Qt's list of the user's
    interface languages first (it knows Windows' and macOS' settings), then the environment as gettext reads it."""
    return i18n.match(QLocale.system().uiLanguages()) or i18n.system_language()


def resolve(choice: str) -> str:
    """The language code a setting stands for: "" (or one we have no translation for) is the system's."""
    if choice and choice in i18n.available():
        return choice
    return system_language()


def start_in(choice: str) -> str:
    """Says our words, and Qt's, in the language `choice` stands for (a Settings value); returns its code. Call once
    the QApplication exists and before any widget is built: widgets take their words when they are made."""
    code = i18n.use(resolve(choice))
    QLocale.setDefault(QLocale(code))  # numbers in the spin boxes as the language writes them
    install_qt_translations(code)
    return code


def install_qt_translations(code: str) -> bool:
    """Qt's own translations for `code` (qtbase_zh_CN.qm, ...; a region falls back to its language, pt_BR to pt),
    in place of any installed before. False where Qt has none (English needs none)."""
    app = QCoreApplication.instance()
    if app is None:
        return False
    previous = getattr(app, "_captioner_qt_translator", None)
    if previous is not None:
        app.removeTranslator(previous)
        app._captioner_qt_translator = None
    if code == i18n.SOURCE_LANGUAGE:
        return False
    translator = QTranslator(app)
    if not translator.load(f"qtbase_{code}", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)):
        return False
    app._captioner_qt_translator = translator  # kept alive as long as the app
    return app.installTranslator(translator)


def restart_command(models_dir: str | None = None) -> tuple[str, list[str]]:
    """The program and arguments that start this app again: the bundle's program, or Python with what ran this one
    (a script such as captioner-gui, or -m and the module). The images given at start are not handed on (they
    were described already), nor --background (the user is at the window); the models folder is."""
    if getattr(sys, "frozen", False):
        launcher: list[str] = []
    else:
        given = len(sys.argv) - 1  # our own arguments, at the end of the original command line
        launcher = sys.orig_argv[1:len(sys.orig_argv) - given]
    return sys.executable, [*launcher, *(["--models-dir", models_dir] if models_dir else [])]
