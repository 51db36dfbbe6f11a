"""The Settings dialog: model, decoding, device, speech, appearance, language, copying, history and hotkeys."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QKeySequenceEdit, QLabel, QLineEdit, QPushButton,
                               QSlider, QSpinBox, QVBoxLayout, QWidget)

from captioner_gui import i18n
from captioner_gui.engine.options import Target
from captioner_gui.i18n import N_, _

from . import language
from .fitting import ScrollingPane
from .settings import DEFAULT_HOTKEYS, Settings
from .speech import Speaker


# The label of each hotkey's field; its accessible name is the label without "&" and ":".
HOTKEY_LABELS = {Target.SCREEN: N_("Describe the scree&n:"), Target.WINDOW: N_("Describe the active &window:"),
                 Target.REGION: N_("Describe a re&gion:"), Target.CLIPBOARD: N_("Describe the clipboard &image:"),
                 Target.TEXT: N_("Read the text of the active window:")}


def _named(widget: QWidget, name: str, description: str = "") -> QWidget:
    widget.setAccessibleName(name)
    widget.setAccessibleDescription(description)
    return widget


def _form(box: QWidget | None = None) -> QFormLayout:
    """A form whose fields go below their labels where the two do not fit side by side (200% text on a laptop):
    nothing then needs scrolling sideways, where a label's start would be out of view."""
    form = QFormLayout(box)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    return form


def without_alt_letter(label: str) -> str:
    """A label without its Alt letter: "&Model:" -> "Model:", "模型(&M)：" -> "模型：" (as Qt names a label)."""
    return re.sub(r"\s*\(&\w\)", "", label).replace("&", "")


def plain(label: str) -> str:
    """A label as a screen reader should say it for the field it names: without its Alt letter and colon."""
    return without_alt_letter(label).rstrip(":：  ")


def label_for(text: str, buddy: QWidget | None = None) -> QLabel:
    """A label with an Alt letter, named without it. The name and the buddy are set before the text: a screen reader
    already running (Orca) is told the label's name as the label is made, and Qt never tells it the name that a
    buddy set later makes ("&Decoding:" would stay "&Decoding:")."""
    label = QLabel()
    label.setAccessibleName(without_alt_letter(text))
    if buddy is not None:
        label.setBuddy(buddy)
    label.setText(text)
    return label


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, speaker: Speaker, models_dir: Path | None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(_("Settings"))
        self._settings = settings

        # Model
        self.model = _named(QComboBox(), _("Model"), _("A model in the models folder, or a model folder of your own."))
        self.model.setEditable(True)
        for name in _model_names(models_dir):
            self.model.addItem(name)
        self.model.setCurrentText(settings.model)
        browse = _named(QPushButton(_("&Browse...")), _("Browse for a model folder"))
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(browse)
        self.decoding = _named(QComboBox(), _("Decoding"), _("Beam search is a little slower and usually better."))
        self.decoding.addItem(_("Beam search (better)"), "beam")
        self.decoding.addItem(_("Greedy (faster)"), "greedy")
        self.decoding.setCurrentIndex(max(0, self.decoding.findData(settings.decoding)))
        self.beam_size = _named(QSpinBox(), _("Beam size"), _("How many candidate captions beam search keeps."))
        self.beam_size.setRange(*Settings.range_of("beam_size"))
        self.beam_size.setValue(settings.beam_size)
        self.decoding.currentIndexChanged.connect(
            lambda: self.beam_size.setEnabled(self.decoding.currentData() == "beam"))
        self.beam_size.setEnabled(settings.decoding == "beam")
        self.rerank = _named(QCheckBox(_("Le&t CLIP pick among beam search's captions")), _("Let CLIP pick"),
                             _("Says the candidate caption that CLIP finds closest to the picture."))
        self.rerank.setChecked(settings.rerank)
        self.device = _named(QComboBox(), _("Device"), _("Automatic uses an NVIDIA GPU when there is one."))
        for label, value in ((_("Automatic"), "auto"), (_("CPU"), "cpu"), (_("GPU (CUDA)"), "cuda")):
            self.device.addItem(label, value)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.device)))
        # Translators: a group of settings (the model, its decoding and device).
        model_box = QGroupBox(_("Model"))
        model_form = _form(model_box)
        model_form.addRow(label_for(_("&Model:"), self.model), model_row)
        model_form.addRow(label_for(_("&Decoding:"), self.decoding), self.decoding)
        model_form.addRow(label_for(_("Beam si&ze:"), self.beam_size), self.beam_size)
        model_form.addRow(self.rerank)
        model_form.addRow(label_for(_("De&vice:"), self.device), self.device)

        # Speech
        self.speech = _named(QCheckBox(_("&Speak descriptions")), _("Speak descriptions"))
        self.speech.setChecked(settings.speech)
        self.use_screen_reader = _named(QCheckBox(_("Use my screen &reader when one runs")),
                                        _("Use my screen reader when one runs"),
                                        _("Send descriptions to NVDA, JAWS or Orca instead of the app's own voice."))
        self.use_screen_reader.setChecked(settings.use_screen_reader)
        self.voice = _named(QComboBox(), _("Voice"))
        # As wide as a short name, not the longest voice's (a list open shows each whole; a screen reader reads it).
        self.voice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.voice.setMinimumContentsLength(16)
        self.voice.addItem(_("Default voice"), "")
        for voice in speaker.voices(timeout=5):
            self.voice.addItem(voice.name, voice.id)
        self.voice.setCurrentIndex(max(0, self.voice.findData(settings.voice)))
        self.rate = _named(QSpinBox(), _("Speaking rate"), _("Words per minute."))
        self.rate.setRange(*Settings.range_of("rate"))
        self.rate.setSingleStep(10)
        # Translators: after the number of the speaking rate ("180 words per minute").
        self.rate.setSuffix(" " + _("words per minute"))
        self.rate.setValue(settings.rate)
        self.volume = _named(QSlider(Qt.Orientation.Horizontal), _("Volume"), _("Percent."))
        self.volume.setRange(*Settings.range_of("volume"))
        self.volume.setPageStep(10)
        self.volume.setValue(settings.volume)
        # Translators: a group of settings.
        speech_box = QGroupBox(_("Speech"))
        speech_form = _form(speech_box)
        speech_form.addRow(self.speech)
        speech_form.addRow(self.use_screen_reader)
        speech_form.addRow(label_for(_("V&oice:"), self.voice), self.voice)
        speech_form.addRow(label_for(_("Rat&e:"), self.rate), self.rate)
        speech_form.addRow(label_for(_("Vo&lume:"), self.volume), self.volume)

        # Results and history
        self.auto_copy = _named(QCheckBox(_("&Copy each description to the clipboard")), _("Copy each description"))
        self.auto_copy.setChecked(settings.auto_copy)
        self.history = _named(QCheckBox(_("&Keep a history of descriptions")), _("Keep a history"),
                              _("Past descriptions are saved on this computer only."))
        self.history.setChecked(settings.history)
        self.history_limit = _named(QSpinBox(), _("History size"),
                                    _("Descriptions kept; the oldest are deleted first, with their thumbnails."))
        self.history_limit.setRange(*Settings.range_of("history_limit"))
        self.history_limit.setSingleStep(100)
        # Translators: after the number of descriptions the history keeps ("1000 descriptions").
        self.history_limit.setSuffix(" " + _("descriptions"))
        self.history_limit.setValue(settings.history_limit)
        self.keep_screen_pictures = _named(
            QCheckBox(_("Keep &pictures of the screen in the history")),
            _("Keep pictures of the screen in the history"),
            _("Off: descriptions of the screen, a window or a region are kept without a thumbnail, since the screen "
              "can show mail, banking or passwords."))
        self.keep_screen_pictures.setChecked(settings.keep_screen_pictures)
        self.keep_screen_text = _named(
            QCheckBox(_("Keep text read &from the screen in the history")),
            _("Keep text read from the screen in the history"),
            _("Off: the history keeps what a description of the screen found (how many lines, the pictures' "
              "captions) but not the lines of text read there, which can be mail, messages or passwords."))
        self.keep_screen_text.setChecked(settings.keep_screen_text)
        self.history.toggled.connect(self._history_toggled)
        self._history_toggled(settings.history)
        history_form = _form()
        history_form.addRow(label_for(_("&History size:"), self.history_limit), self.history_limit)
        history_form.addRow(self.keep_screen_pictures)
        history_form.addRow(self.keep_screen_text)
        self.all_monitors = _named(QCheckBox(_("Describe &all monitors together")),
                                   _("Describe all monitors together"),
                                   _("Off: 'describe the screen' takes the monitor the mouse pointer is on."))
        self.all_monitors.setChecked(settings.all_monitors)

        # Appearance and language
        self.theme = _named(QComboBox(), _("Theme"), _("High contrast: white on black with a yellow focus ring. "
                                                       "Follow the system: high contrast when the system is set to "
                                                       "it."))
        for label, value in ((_("Follow the system"), "system"), (_("Standard"), "standard"),
                             (_("High contrast"), "high_contrast")):
            self.theme.addItem(label, value)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))
        self.text_size = _named(QSpinBox(), _("Text size"), _("Also Control+Plus, Control+Minus and Control+0 in "
                                                              "the window."))
        self.text_size.setRange(*Settings.range_of("text_size"))
        self.text_size.setSingleStep(10)
        self.text_size.setSuffix(" %")
        self.text_size.setValue(settings.text_size)
        self.language = _named(QComboBox(), _("Language"), _("The language of the app's words. A new language is "
                                                             "used from the next start."))
        for code, name in language_choices().items():
            self.language.addItem(name, code)
        self.language.setCurrentIndex(max(0, self.language.findData(settings.language)))
        # Translators: a group of settings: how the app looks, and its language.
        appearance_box = QGroupBox(_("Appearance and language"))
        appearance_form = _form(appearance_box)
        appearance_form.addRow(label_for(_("&Theme:"), self.theme), self.theme)
        appearance_form.addRow(label_for(_("Te&xt size:"), self.text_size), self.text_size)
        appearance_form.addRow(label_for(_("Lang&uage:"), self.language), self.language)

        # Hotkeys
        hotkey_box = QGroupBox(_("Hotkeys (work in any program)"))
        hotkey_form = _form(hotkey_box)
        self.hotkeys: dict[Target, QKeySequenceEdit] = {}
        for key, marked in HOTKEY_LABELS.items():
            label = _(marked)
            edit = _named(QKeySequenceEdit(QKeySequence(settings.hotkeys[key])), plain(label),
                          _("Press the new key combination. The default is {key}.").format(key=DEFAULT_HOTKEYS[key]))
            edit.setMaximumSequenceLength(1)
            edit.setClearButtonEnabled(True)
            # Wide enough for a whole shortcut (in the words of the user's language) and the clear button: where that
            # does not fit beside the label, the field goes below it.
            edit.ensurePolished()  # the font of the user's text size
            metrics, longest = edit.fontMetrics(), QKeySequence("Ctrl+Alt+Shift+W")
            edit.setMinimumWidth(metrics.horizontalAdvance(longest.toString(QKeySequence.SequenceFormat.NativeText))
                                 + 3 * metrics.height())
            _name_key_field(edit)
            self.hotkeys[key] = edit
            hotkey_form.addRow(label_for(label, edit), edit)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self._restore_defaults)

        layout = QVBoxLayout()
        layout.addWidget(model_box)
        layout.addWidget(speech_box)
        layout.addWidget(appearance_box)
        layout.addWidget(self.auto_copy)
        layout.addWidget(self.history)
        layout.addLayout(history_form)
        layout.addWidget(self.all_monitors)
        layout.addWidget(hotkey_box)
        outer = QVBoxLayout(self)
        pane = ScrollingPane(layout)  # at 200% the dialog is taller than a laptop's screen
        outer.addWidget(pane)
        outer.addWidget(buttons)
        screen, wanted = self.screen().availableGeometry(), pane.widget().sizeHint()
        self.resize(min(wanted.width() + 40, screen.width() - 16), min(wanted.height() + 80, screen.height() - 48))

    def _history_toggled(self, keep: bool) -> None:
        self.history_limit.setEnabled(keep)
        self.keep_screen_pictures.setEnabled(keep)
        self.keep_screen_text.setEnabled(keep)

    def _browse_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, _("Choose a model folder (with manifest.json)"))
        if folder:
            self.model.setCurrentText(folder)

    def _restore_defaults(self) -> None:
        defaults = Settings()
        self.model.setCurrentText(defaults.model)
        self.decoding.setCurrentIndex(self.decoding.findData(defaults.decoding))
        self.beam_size.setValue(defaults.beam_size)
        self.rerank.setChecked(defaults.rerank)
        self.device.setCurrentIndex(self.device.findData(defaults.device))
        self.speech.setChecked(defaults.speech)
        self.use_screen_reader.setChecked(defaults.use_screen_reader)
        self.voice.setCurrentIndex(0)
        self.rate.setValue(defaults.rate)
        self.volume.setValue(defaults.volume)
        self.auto_copy.setChecked(defaults.auto_copy)
        self.history.setChecked(defaults.history)
        self.history_limit.setValue(defaults.history_limit)
        self.keep_screen_pictures.setChecked(defaults.keep_screen_pictures)
        self.keep_screen_text.setChecked(defaults.keep_screen_text)
        self.all_monitors.setChecked(defaults.all_monitors)
        self.theme.setCurrentIndex(self.theme.findData(defaults.theme))
        self.text_size.setValue(defaults.text_size)
        self.language.setCurrentIndex(self.language.findData(defaults.language))
        for key, edit in self.hotkeys.items():
            edit.setKeySequence(QKeySequence(DEFAULT_HOTKEYS[key]))

    def result_settings(self) -> Settings:
        """The settings as the dialog shows them."""
        hotkeys = {key: edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
                   for key, edit in self.hotkeys.items()}
        return replace(
            self._settings, model=self.model.currentText().strip() or Settings.model,
            decoding=self.decoding.currentData(), beam_size=self.beam_size.value(), rerank=self.rerank.isChecked(),
            device=self.device.currentData(),
            speech=self.speech.isChecked(), use_screen_reader=self.use_screen_reader.isChecked(),
            voice=self.voice.currentData() or "", rate=self.rate.value(), volume=self.volume.value(),
            auto_copy=self.auto_copy.isChecked(), history=self.history.isChecked(),
            history_limit=self.history_limit.value(), keep_screen_pictures=self.keep_screen_pictures.isChecked(),
            keep_screen_text=self.keep_screen_text.isChecked(),
            all_monitors=self.all_monitors.isChecked(), theme=self.theme.currentData(),
            text_size=self.text_size.value(), language=self.language.currentData(), hotkeys=hotkeys,
        )


def _name_key_field(edit: QKeySequenceEdit) -> None:
    """A key field is a container around an unnamed text field whose text is the key. Qt gives the focus to the
    container, which a screen reader is handed as a "filler" with no key in it; so the focus goes to the text field
    instead, named by the action: Orca says "Describe the screen, Ctrl+Alt+Shift+S", and the new key as soon as it is
    pressed. The field hands its keys to the container, which records them."""
    field = edit.findChild(QLineEdit)
    if field is None:
        return
    field.setAccessibleName(edit.accessibleName())
    field.setAccessibleDescription(edit.accessibleDescription())
    field.setAttribute(Qt.WidgetAttribute.WA_InputMethodEnabled, False)  # keys, not an input method's text
    field.setFocusProxy(None)
    edit.setFocusProxy(field)
    field.installEventFilter(_KeysToRecorder(edit))


class _KeysToRecorder(QObject):
    """Hands a key field's keys to its QKeySequenceEdit, but for Tab and Shift+Tab, which move on."""

    KEY_EVENTS = (QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.ShortcutOverride)

    def __init__(self, recorder: QKeySequenceEdit):
        super().__init__(recorder)
        self.recorder = recorder

    def eventFilter(self, watched, event) -> bool:
        if event.type() not in self.KEY_EVENTS:
            return False
        moving_on = (event.key() in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab)
                     and not event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier)
        if moving_on:
            return False
        QApplication.sendEvent(self.recorder, event)
        return True


def language_choices() -> dict[str, str]:
    """The Language box's choices by setting: the system's language first (named, so the user knows which), then
    each language by its own name (so that a user who cannot read the current one still finds theirs)."""
    names = i18n.available()
    system = _("System language ({language})").format(language=names[language.system_language()])
    return {"": system, **names}


def _model_names(models_dir: Path | None) -> list[str]:
    """Installed models first, then the built-in names that can still be downloaded."""
    from captioner_gui.engine import BUILTINS, default_models_dir, list_models

    installed = [info.name for info in list_models(models_dir or default_models_dir())]
    return installed + [name for name in BUILTINS if name not in installed]
