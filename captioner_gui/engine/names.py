"""File names as text that is safe to print, show and write as JSON.

A file name on Linux is bytes. Python holds the bytes that are not UTF-8 as lone surrogates (U+DC80-U+DCFF, its
"surrogateescape"), which no UTF-8 output can hold: here each such byte is written as the four characters \\xNN
("bad\\xff.png"), as Python's "backslashreplace" writes it. A name can also hold control characters (a newline,
ESC ] ... BEL that retitles a terminal): shown to a person, they are written escaped too (\\n, \\x1b, \\x07).
"""

from __future__ import annotations

import json
import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (a terminal obeys both)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _byte(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def readable(text: str) -> str:
    """`text` as valid Unicode: each byte that was not UTF-8 written as \\xNN."""
    return _SURROGATE.sub(_byte, text)


def shown(text: str) -> str:
    """`text` (a file name, or a message that names one) as a person may see it on a terminal or in a window:
    readable, with each control character escaped (\\n, \\x1b)."""
    return _CONTROL.sub(lambda m: _SHORT.get(m.group(), f"\\x{ord(m.group()):02x}"), readable(text))


def json_text(value, indent: int | None = None) -> str:
    """`value` as JSON text that is valid UTF-8 whatever the names in it hold: bytes that were not UTF-8 become
    the text \\xNN (readable's rule), control characters JSON's own escapes (C1's too, so that no terminal obeys
    them)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    # A surrogate or a C1 character can only stand inside a JSON string: escaping it there keeps the JSON valid.
    text = _SURROGATE.sub(lambda m: _byte(m).replace("\\", "\\\\"), text)
    return re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)
