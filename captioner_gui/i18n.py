"""The user's language: one translation mechanism for every word that captioner shows or says.

Our own words, in the engine, the CLI and the app alike, go through gettext catalogues: one `.po` file a language
in `captioner_gui/locale/<language>/LC_MESSAGES/captioner.po`, read with polib (no compiling step, so a source
checkout and a bundle read the same file). A new language is one new `.po` file (`packaging/translations.py`
writes it from the source). Qt's own dialogs take Qt's own translations (app/main.py).

    from captioner_gui.i18n import _, ngettext
    _("The image is blank.")
    ngettext("{count} line", "{count} lines", count).format(count=count)

Words kept in a constant are marked with `N_` and translated where they are used (the language can change).
"""

from __future__ import annotations

import gettext
import locale
import os
import sys
from functools import lru_cache
from pathlib import Path

DOMAIN = "captioner"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"
# Tags that name a language we have under another name: a Chinese system says zh, zh-CN, zh-Hans-CN or zh_SG.
# Traditional Chinese (zh-TW, zh-HK, zh-Hant) is a translation of its own, not yet written: those fall to English.
ALIASES = {"zh": "zh_CN", "zh_hans": "zh_CN", "zh_sg": "zh_CN", "zh_hans_cn": "zh_CN", "zh_hans_sg": "zh_CN"}

_current = SOURCE_LANGUAGE


def N_(message: str) -> str:  # noqa: N802 (gettext's own name for it)
    """Marks words for translation where they are kept, to be translated with `_` where they are used."""
    return message


def _(message: str) -> str:
    return _catalogue(_current).gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return _catalogue(_current).ngettext(singular, plural, count)


def pgettext(context: str, message: str) -> str:
    """Words that are translated differently by where they stand (a short label and a sentence)."""
    return _catalogue(_current).pgettext(context, message)


def available() -> dict[str, str]:
    """Each language there is a translation for (and English), by its code, with its own name for itself."""
    languages = {SOURCE_LANGUAGE: "English"}
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        code = po.parent.parent.name
        # Translators: the name of your language in itself, as the language menu shows it (简体中文, Deutsch).
        languages[code] = _catalogue(code).pgettext("language name", "English")
    return languages


def match(tags) -> str | None:
    """The first of these language tags ("zh-Hans-CN", "zh_CN.UTF-8", "en-GB") that we have a translation for,
    by our code for it ("zh_CN", "en"); None when there is none."""
    ours = {code.lower(): code for code in available()}
    for tag in tags:
        if not tag:
            continue
        name = tag.split(".")[0].split("@")[0].replace("-", "_").lower()
        if name in ("c", "posix"):
            continue
        parts = name.split("_")
        if parts[0] == "zh" and set(parts) & {"tw", "hk", "mo", "hant"}:
            continue  # Traditional Chinese: not Simplified, and not English either: look further
        for candidate in ("_".join(parts[:n]) for n in range(len(parts), 0, -1)):
            if candidate in ours:
                return ours[candidate]
            if candidate in ALIASES:
                return ALIASES[candidate]
    return None


def system_language() -> str:
    """The language of the user's system, where we have it; else English. Reads what gettext reads (LANGUAGE,
    LC_ALL, LC_MESSAGES, LANG), and the user's interface language on Windows and macOS."""
    tags: list[str] = []
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable)
        if value:
            tags += value.split(":") if variable == "LANGUAGE" else [value]
            break
    if sys.platform == "win32":
        try:
            import ctypes

            tags.append(locale.windows_locale.get(ctypes.windll.kernel32.GetUserDefaultUILanguage(), ""))
        except (AttributeError, OSError):
            pass
    elif sys.platform == "darwin" and not tags:
        tags += _mac_languages()
    return match(tags) or SOURCE_LANGUAGE


def use(language: str | None) -> str:
    """Says our words in `language` from now on (a code, a tag such as "zh-CN", or None/""/"system": the system's).
    Returns the code used. Raises ValueError for a language we have no translation for. Called at start-up, before
    the threads that describe start: they read the language without a lock (a new one takes a restart)."""
    if not language or language == "system":
        code = system_language()
    else:
        code = match([language])
        if code is None:
            names = ", ".join(available())
            raise ValueError(_("There is no translation for '{language}'; choose one of: {names}.").format(
                language=language, names=names))
    global _current
    _current = code
    return code


def current() -> str:
    """The code of the language in use ("en", "zh_CN")."""
    return _current


def spoken_language(code: str | None = None) -> str:
    """The language a voice must speak for our words: "en", "zh" (what the OCR and the voices call languages)."""
    return (code or _current).split("_")[0]


def translate_argparse() -> None:
    """argparse's own words ("usage:", "options", its errors) in our language, for the CLI and the app's options:
    argparse looks up its module's `_` and `ngettext` at each call, which are pointed at our catalogue
    (packaging/translations.py lists those words)."""
    import argparse

    argparse._ = _
    argparse.ngettext = ngettext


class _Catalogue(gettext.NullTranslations):
    """A `.po` file's translations, read as they are (untranslated and fuzzy entries say the English)."""

    def __init__(self, path: Path | None):
        super().__init__()
        self.messages: dict[tuple[str | None, str], list[str]] = {}
        self.plural = lambda n: int(n != 1)
        if path is None:
            return
        import polib

        catalogue = polib.pofile(str(path))
        self.plural = _plural_rule(catalogue.metadata.get("Plural-Forms", ""))
        for entry in catalogue:
            if entry.obsolete or "fuzzy" in entry.flags:
                continue
            forms = ([entry.msgstr_plural[k] for k in sorted(entry.msgstr_plural)] if entry.msgid_plural
                     else [entry.msgstr])
            if all(forms):
                self.messages[(entry.msgctxt, entry.msgid)] = forms

    def gettext(self, message: str) -> str:
        return self.messages.get((None, message), [message])[0]

    def pgettext(self, context: str, message: str) -> str:
        return self.messages.get((context, message), [message])[0]

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        forms = self.messages.get((None, singular))
        if forms is None:
            return singular if n == 1 else plural
        return forms[min(self.plural(n), len(forms) - 1)]


def _plural_rule(header: str):
    """The plural rule of a Plural-Forms header ("nplurals=1; plural=0;"), as gettext reads it."""
    _, _, rule = header.partition("plural=")
    rule = rule.strip().rstrip(";")
    return gettext.c2py(rule) if rule else (lambda n: int(n != 1))


@lru_cache(maxsize=None)
def _catalogue(code: str) -> _Catalogue:
    path = LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"
    return _Catalogue(path if code != SOURCE_LANGUAGE and path.is_file() else None)


def _mac_languages() -> list[str]:
    import subprocess

    try:
        listing = subprocess.run(["defaults", "read", "-g", "AppleLanguages"], capture_output=True, text=True,
                                 timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [word.strip(' ",()') for word in listing.split() if word.strip(' ",()')]
