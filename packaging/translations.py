"""Keeps the translation files in step with the source (README "Languages").

    python packaging/translations.py update        # the template and every language's .po from the source
    python packaging/translations.py new de        # a .po file for a new language, ready to translate
    python packaging/translations.py check         # what is missing, fuzzy or out of step (the tests run it too)
    python packaging/translations.py fill zh_CN words.json   # translations from a JSON object, into the .po file

In the JSON file, a key is the English words (for pgettext: "context\x04words"), a value the translation (for
ngettext: a list, one string for each of the language's plural forms).

The words are found with Babel's extractor: every `_()`, `N_()`, `ngettext()` and `pgettext()` in captioner_gui.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "captioner_gui"
LOCALE = PACKAGE / "locale"
TEMPLATE = LOCALE / "captioner.pot"
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[sdr]|%[sdr]")
# argparse's own words (usage, options, errors), which the CLI shows in the user's language too (cli.py).
ARGPARSE_WORDS = ["usage: ", "options", "positional arguments", "show this help message and exit",
                  "%(prog)s: error: %(message)s\n",
                  "the following arguments are required: %s", "unrecognized arguments: %s",
                  "invalid choice: %(value)r (choose from %(choices)s)", "expected one argument",
                  "argument %(argument_name)s: %(message)s", "invalid %(type)s value: %(value)r",
                  "not allowed with argument %s", "one of the arguments %s is required",
                  "ambiguous option: %(option)s could match %(matches)s"]


def template() -> Catalog:
    """Every word in the source to translate, with where it stands."""
    catalog = Catalog(project="captioner", domain="captioner", charset="utf-8")
    keywords = dict(DEFAULT_KEYWORDS, N_=None)
    for filename, line, message, comments, context in extract_from_dir(
            str(PACKAGE), method_map=[("**.py", "python")], keywords=keywords, comment_tags=("Translators:",)):
        catalog.add(message, locations=[(f"captioner_gui/{filename}", line)], auto_comments=comments,
                    context=context)
    for words in ARGPARSE_WORDS:
        catalog.add(words, locations=[("argparse", 0)], auto_comments=["argparse's own words"],
                    flags=["python-format"])
    return catalog


def languages() -> list[Path]:
    return sorted(LOCALE.glob("*/LC_MESSAGES/captioner.po"))


def update() -> None:
    """The template written anew; each language's file merged with it (new words empty, changed ones fuzzy)."""
    fresh = template()
    with open(TEMPLATE, "wb") as out:
        write_po(out, fresh, width=116, omit_header=False, sort_by_file=True)
    for path in languages():
        with open(path, "rb") as source:
            catalog = read_po(source)
        catalog.update(fresh, update_header_comment=False)
        with open(path, "wb") as out:
            write_po(out, catalog, width=116, sort_by_file=True, ignore_obsolete=True)
        print(f"{path.relative_to(ROOT)}: {sum(1 for m in catalog if m.id and not m.string)} to translate")


def new(language: str) -> None:
    path = LOCALE / language / "LC_MESSAGES" / "captioner.po"
    if path.exists():
        sys.exit(f"{path.relative_to(ROOT)} exists; run `update`.")
    catalog = template()
    catalog.locale = language
    path.parent.mkdir(parents=True)
    with open(path, "wb") as out:
        write_po(out, catalog, width=116, sort_by_file=True)
    print(f"Wrote {path.relative_to(ROOT)}: translate it (the first word: your language's name).")


def problems() -> list[str]:
    """What keeps a language from being complete: words in the source it lacks, empty or fuzzy translations,
    placeholders that differ from the English, and words the source no longer has."""
    wanted = {(m.context, m.id if isinstance(m.id, str) else m.id[0]): m for m in template() if m.id}
    found = []
    for path in languages():
        name = path.parent.parent.name
        with open(path, "rb") as source:
            catalog = read_po(source)
        have = {(m.context, m.id if isinstance(m.id, str) else m.id[0]): m for m in catalog if m.id}
        for key, message in wanted.items():
            entry = have.get(key)
            if entry is None:
                found.append(f"{name}: missing {key[1]!r}")
                continue
            strings = entry.string if isinstance(entry.string, (list, tuple)) else [entry.string]
            if entry.fuzzy or not all(strings):
                found.append(f"{name}: not translated {key[1]!r}")
                continue
            english = message.id if isinstance(message.id, (list, tuple)) else [message.id]
            expected = sorted(set(PLACEHOLDER.findall(english[-1])))
            for string in strings:
                if sorted(set(PLACEHOLDER.findall(string))) != expected:
                    found.append(f"{name}: placeholders differ in {key[1]!r}: {string!r}")
        found += [f"{name}: no longer in the source {key[1]!r}" for key in have.keys() - wanted.keys()]
    return found


def fill(language: str, words: Path) -> None:
    """Translations from `words` (JSON) set in `language`'s .po file; the entries they fill lose their fuzzy mark."""
    import json

    path = LOCALE / language / "LC_MESSAGES" / "captioner.po"
    given = json.loads(words.read_text(encoding="utf-8"))
    with open(path, "rb") as source:
        catalog = read_po(source)
    filled = 0
    for message in catalog:
        if not message.id:
            continue
        singular = message.id if isinstance(message.id, str) else message.id[0]
        key = f"{message.context}\x04{singular}" if message.context else singular
        if key in given:
            value = given[key]
            message.string = tuple(value) if isinstance(message.id, (list, tuple)) else value
            message.flags.discard("fuzzy")
            filled += 1
    with open(path, "wb") as out:
        write_po(out, catalog, width=116, sort_by_file=True, ignore_obsolete=True)
    print(f"{path.relative_to(ROOT)}: {filled} filled, "
          f"{sum(1 for m in catalog if m.id and not all(_strings(m)))} still to translate")


def _strings(message) -> list[str]:
    return list(message.string) if isinstance(message.string, (list, tuple)) else [message.string]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("update")
    commands.add_parser("check")
    commands.add_parser("new").add_argument("language", help="a locale code: de, fr, zh_TW, ...")
    filling = commands.add_parser("fill")
    filling.add_argument("language")
    filling.add_argument("words", type=Path)
    args = parser.parse_args()
    if args.command == "update":
        update()
    elif args.command == "fill":
        fill(args.language, args.words)
    elif args.command == "new":
        new(args.language)
    else:
        found = problems()
        print("\n".join(found) or "Every language is complete.")
        sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
