"""captioner in the user's language: which language is chosen, that every language's translation is complete, the
CLI in Chinese, and Chinese words said by a Chinese voice (README "Languages")."""

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from captioner_gui import i18n
from cli_helpers import one_line_error, run_captioner

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def system_locale(monkeypatch):
    """Sets the system's language as a Linux desktop does (LANG), with nothing that overrides it."""
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    return lambda value: monkeypatch.setenv("LANG", value)


def test_the_systems_language_is_chosen_where_there_is_a_translation(system_locale):
    system_locale("zh_CN.UTF-8")
    assert i18n.system_language() == "zh_CN"
    system_locale("zh_SG.UTF-8")
    assert i18n.system_language() == "zh_CN"  # Simplified Chinese, as in Singapore
    for other in ("zh_TW.UTF-8", "de_DE.UTF-8", "C.UTF-8", "POSIX"):  # Traditional Chinese is not Simplified
        system_locale(other)
        assert i18n.system_language() == "en", other
    assert i18n.match(["zh-Hant-TW", "zh-Hans-CN", "en-US"]) == "zh_CN"  # Qt's uiLanguages, in order
    assert i18n.match(["fr-FR", "en-GB"]) == "en"


def test_a_language_can_be_chosen_by_its_code_or_tag_and_an_unknown_one_is_refused():
    try:
        assert i18n.use("zh-CN") == "zh_CN" and i18n.spoken_language() == "zh"
        assert i18n._("The screen is blank.") == "屏幕是空白的。"
        assert i18n.ngettext("{count} picture", "{count} pictures", 3).format(count=3) == "3 张图片"
        with pytest.raises(ValueError, match="en, zh_CN"):
            i18n.use("klingon")
        assert i18n.current() == "zh_CN"  # a refused language changes nothing
    finally:
        i18n.use("en")
    assert i18n._("The screen is blank.") == "The screen is blank."
    assert i18n.available() == {"en": "English", "zh_CN": "简体中文"}


def test_every_language_translates_every_word_of_the_source():
    """Each .po file against the words the source holds now (Babel's extraction): none missing, none empty or
    fuzzy, the same placeholders as the English, none left over. `python packaging/translations.py update`
    brings a file in step; the README says how to translate."""
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import translations
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    assert translations.problems() == []


def test_the_cli_speaks_the_systems_language_and_its_option_overrides_it(tmp_path):
    chinese = {"LANG": "zh_CN.UTF-8", "LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "CAPTIONER_LANGUAGE": ""}
    missing = run_captioner("caption", str(tmp_path / "gone.png"), "--models-dir", str(tmp_path), env=chinese)
    line = one_line_error(missing)  # the model is looked for first: not installed, and how to get it
    assert line.startswith("captioner: ") and "captioner models download coco" in line
    assert len(re.findall(r"[\u4e00-\u9fff]", line)) >= 5, line
    listing = run_captioner("models", "list", "--models-dir", str(tmp_path / "empty"), env=chinese)
    assert listing.stdout.startswith(f"{tmp_path / 'empty'} 中没有模型。")
    helping = run_captioner("caption", "--help", env=chinese)
    assert helping.stdout.startswith("用法：captioner caption") and "为每张图片" in helping.stdout
    wrong = run_captioner("caption", "--decoding", "nope", "x.png", env=chinese)
    assert "无效的选择" in wrong.stderr and wrong.returncode == 2
    english = run_captioner("--language", "en", "models", "list", "--models-dir", str(tmp_path), env=chinese)
    assert english.stdout.startswith("No models in")
    unknown = run_captioner("--language", "xx", "models", "list", env=chinese)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1 and "zh_CN" in unknown.stderr


def test_in_chinese_the_apps_words_are_said_by_a_mandarin_voice(tmp_path):
    """With the app in Chinese and no voice chosen, our words are said by espeak-ng's Mandarin voice (the sound
    is exactly what `espeak-ng -v cmn` makes of them, and not silent); an English caption by an English one."""
    from captioner_gui.app.speech import Speaker, SpeechRoute
    from app_helpers import loudness

    words, caption = "左上角的图片：", "A dog sitting on a couch."
    speaker = Speaker(record_dir=tmp_path / "said")
    i18n.use("zh_CN")
    try:
        SpeechRoute(speaker, SimpleNamespace(speech=True, use_screen_reader=False)).say([(words, "zh"),
                                                                                          (caption, "en")])
        assert speaker.wait_until_quiet(30)
    finally:
        speaker.close()
        i18n.use("en")
    said_words, said_caption = sorted((tmp_path / "said").glob("*.wav"))
    for voice, text in (("cmn", words), ("en", caption)):
        expected = tmp_path / f"{voice}.wav"
        subprocess.run([shutil.which("espeak-ng"), "-w", str(expected), "-s", "180", "-a", "100", "-v", voice, "--", text],
                       check=True)
        assert (said_words if voice == "cmn" else said_caption).read_bytes() == expected.read_bytes()
    assert loudness(said_words)[1] > 300
