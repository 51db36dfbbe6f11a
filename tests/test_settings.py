"""The settings: bounds declared on the fields, the hotkeys as one mapping, and files of older versions."""

from PySide6.QtCore import QSettings

from captioner_gui.app.settings import DEFAULT_HOTKEYS, VERSION, Settings
from captioner_gui.engine.options import Target


def test_a_file_without_a_version_loads_with_all_it_holds(tmp_path):
    """What the app wrote before settings had a version (hotkeys as hotkey_<action> keys) is kept."""
    path = tmp_path / "old.conf"
    path.write_text("[General]\nmodel=my-model\nrate=220\nhotkey_screen=Ctrl+Alt+Shift+D\nhotkey_text=\n"
                    "auto_copy=true\nunknown_key=kept\n", encoding="utf-8")
    settings = Settings.load(QSettings(str(path), QSettings.Format.IniFormat))
    assert (settings.model, settings.rate, settings.auto_copy) == ("my-model", 220, True)
    assert settings.hotkeys[Target.SCREEN] == "Ctrl+Alt+Shift+D"
    assert settings.hotkeys[Target.TEXT] == ""  # a cleared hotkey stays cleared
    assert settings.hotkeys[Target.WINDOW] == DEFAULT_HOTKEYS[Target.WINDOW]
    store = QSettings(str(path), QSettings.Format.IniFormat)
    settings.save(store)
    again = QSettings(str(path), QSettings.Format.IniFormat)
    assert int(again.value("version")) == VERSION
    assert again.value("hotkey_screen") == "Ctrl+Alt+Shift+D" and again.value("unknown_key") == "kept"
    assert Settings.load(again) == settings


def test_values_out_of_bounds_fall_back_or_are_clamped(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("[General]\nbeam_size=99\nvolume=-5\ndevice=tpu\ntheme=neon\nmodel=" "\nhistory_limit=3\n",
                    encoding="utf-8")
    settings = Settings.load(QSettings(str(path), QSettings.Format.IniFormat))
    assert (settings.beam_size, settings.volume, settings.history_limit) == (20, 0, 10)
    assert (settings.device, settings.theme, settings.model) == ("auto", "system", "coco")
    assert Settings.range_of("text_size") == (70, 300)


def test_a_settings_file_that_is_a_link_is_read_but_never_written_or_made_private(tmp_path, monkeypatch):
    """captioner.ini a link to a file of the user's: the settings in it are used, saving goes elsewhere for this
    run (said once), and the file keeps its words and its permissions."""
    from PySide6.QtCore import QCoreApplication, QSize

    from captioner_gui.app import settings as settings_module

    QCoreApplication.setOrganizationName("captioner")
    QCoreApplication.setApplicationName("captioner")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "config"))
    monkeypatch.setattr(settings_module, "LINKED", [])
    other = tmp_path / "dotfiles.ini"
    other.write_text("[General]\nrate=220\n")
    other.chmod(0o644)
    (tmp_path / "config" / "captioner").mkdir(parents=True)
    link = tmp_path / "config" / "captioner" / "captioner.ini"
    link.symlink_to(other)
    assert settings_module.linked_settings_problem() is None

    settings = Settings.load()
    assert settings.rate == 220
    assert str(link) in settings_module.linked_settings_problem()
    settings.rate = 300
    settings.save()
    QSettings().setValue("window/size", QSize(500, 400))  # as the window does when it closes
    QSettings().sync()
    assert Settings.load().rate == 300  # in use until the app quits
    assert other.read_text() == "[General]\nrate=220\n" and (other.stat().st_mode & 0o777) == 0o644
    assert link.is_symlink()
