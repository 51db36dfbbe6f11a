"""`captioner benchmark`: every mode runs once on a tiny model, so that none breaks unseen (the figures themselves are
checked by people against the README's, on real models: no test here times anything)."""

import json

import pytest

from cli_helpers import run_captioner


@pytest.mark.parametrize("mode,figures", [
    ([], ["per_token_ms", "greedy_20_tokens_ms", "launch_to_caption_s", "speedup_vs_reference"]),
    (["--describe"], ["load_with_reader_s", "peak_memory_mb"]),
    (["--soak", "2"], ["descriptions", "seconds_per_description", "memory_mb"]),
    (["--translation"], ["load_ms"]),
])
def test_each_benchmark_mode_runs_and_gives_its_figures(tiny_mlp, mode, figures):
    result = run_captioner("benchmark", *mode, "--model", tiny_mlp.folder, "--repeats", "1", "--json",
                           env={"QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    results = json.loads(result.stdout)
    for figure in figures:  # measured (a tiny model's step can round to 0 ms: present is what counts)
        assert isinstance(results.get(figure), (int, float, dict)), (figure, results)
    if mode == ["--soak", "2"]:
        assert results["descriptions"] == 2 and results["errors"] == 0, results


def test_latency_prints_each_row_as_it_is_measured_through_both_routes(tiny_mlp):
    result = run_captioner("benchmark", "--latency", "--model", tiny_mlp.folder, "--repeats", "1",
                           env={"QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line.split(" | ")[1].isdigit()]
    assert [row.split(" | ")[0] for row in rows] == ["| photo own voice", "| text own voice",
                                                     "| photo screen reader", "| text screen reader"], result.stdout
    for row in rows:  # the first sound and the answer's, in ms, and the first words heard
        first, answer, words = row.split(" | ")[1:4]
        assert 0 < int(first) <= int(answer) and words.strip(), row


def test_the_latency_stand_in_has_the_screen_readers_interface():
    """The stand-in is a ScreenReader: it can be made (no method of the interface left abstract), and every method
    a caller may use is there with the real signature."""
    import inspect

    from captioner_gui.app.latency import ScreenReaderStandIn
    from captioner_gui.app.screen_reader import ScreenReader

    heard = []
    stand_in = ScreenReaderStandIn(heard)
    for name, method in inspect.getmembers(ScreenReader, inspect.isfunction):
        if not name.startswith("_"):
            assert inspect.signature(getattr(stand_in, name)) == inspect.signature(method.__get__(stand_in)), name
    stand_in.speak_parts([("Mail.", "en"), ("Inbox.", "en")])
    assert [text for _time, text in heard] == ["Mail. Inbox."]
