"""The engine's choices (engine/options.py): written once, importable without torch."""

import subprocess
import sys

import pytest

from captioner_gui.engine import CaptionerError
from captioner_gui.engine.options import CAPTURES, DEVICES, METHODS, PRECISIONS, DecodeOptions, Target


def test_the_options_import_no_torch_and_no_qt():
    code = ("import sys, captioner_gui.cli, captioner_gui.engine.options; "
            "print(sorted(m for m in ('torch', 'PySide6') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_lists_and_the_targets():
    assert (METHODS, DEVICES) == (("greedy", "beam", "nucleus"), ("auto", "cpu", "cuda"))
    assert PRECISIONS[0] == "auto" and "int8" in PRECISIONS
    assert Target("screen") is Target.SCREEN and Target.SCREEN == "screen" and f"{Target.REGION}" == "region"
    assert {target for target in Target if target.is_capture} == CAPTURES == {"screen", "window", "region"}


@pytest.mark.parametrize("options, message", [
    (DecodeOptions(method="sampling"), "Unknown decoding 'sampling': use one of greedy, beam, nucleus."),
    (DecodeOptions(beam_size=0), "The beam size must be 1 or more."),
    (DecodeOptions(top_p=0.0), "top-p must be above 0 and at most 1."),
])
def test_wrong_decoding_options_are_one_line(options, message):
    with pytest.raises(CaptionerError, match=f"^{message}$"):
        options.check()
