"""`captioner benchmark --soak N`: the app's own window and worker describe N pictures in a row, offscreen, as months
of daily use would: files, and (every other one) screens whose text is read. Reports memory, time per description
and Python's count of references to None at the start and at the end: a Qt binding that loses references (PySide6
6.12.0 on Python 3.11) or a leak shows there long before a user's app dies of it. Settings and history go to a
temporary folder; the user's are not touched."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

WINDOW = 50  # descriptions averaged at the start and at the end


def resident_megabytes() -> float:
    """The process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return peak_megabytes()


def peak_megabytes() -> float:
    """The process's peak resident memory so far."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3  # bytes on macOS, KB elsewhere


def _pictures(folder: Path, count: int = 20) -> list[Path]:
    """Different pictures (noise under coloured shapes), so that no cache can make the run look better."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        picture = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(picture)
        for _ in range(6):
            x, y = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            draw.ellipse((x, y, x + 80, y + 80), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        paths.append(folder / f"picture{index}.png")
        picture.save(paths[-1])
    return paths


def run_soak(model: str, models_dir: Path | None, count: int,
             report: Callable[[str], None] = lambda message: None) -> dict:
    """Describes `count` pictures through the window, one after the other; returns the figures."""
    from captioner_gui.benchmark import benchmark_screen
    from captioner_gui.engine.options import Target

    from .offscreen import offscreen_app
    from .speech import Speaker
    from .worker import Request

    with offscreen_app(model, models_dir, Speaker(), report, speech=False) as app:
        window, answers = app.window, app.answers
        pictures = _pictures(app.folder)
        screens = [benchmark_screen(0), benchmark_screen(2)]
        rows = []
        report(f"Describing {count} pictures...")
        for index in range(count):
            started = time.perf_counter()
            if index % 2:  # a screen, as the hotkey takes it: its text read, its pictures captioned
                window.submit(Request(name="Screen", source=Target.SCREEN, picture=screens[index // 2 % 2]))
            else:
                window.describe_files([str(pictures[index // 2 % len(pictures)])])
            app.wait_for(lambda: len(answers) > index and not window.pending)
            rows.append((time.perf_counter() - started, resident_megabytes(), sys.getrefcount(None)))
            if (index + 1) % 100 == 0:
                report(f"{index + 1} described, {rows[-1][1]:.0f} MB")
    errors = [a.error for a in answers if a.error]
    window_size = min(WINDOW, max(1, count // 2))  # a short soak (a check that it runs) compares its halves
    first, last = rows[:window_size], rows[-window_size:]
    return {
        "descriptions": len(rows), "errors": len(errors), "first_error": errors[0] if errors else None,
        "window": window_size,
        "seconds_per_description": {"start": round(statistics.median(r[0] for r in first), 4),
                                    "end": round(statistics.median(r[0] for r in last), 4)},
        "memory_mb": {"start": round(first[-1][1], 1), "end": round(last[-1][1], 1), "peak": round(peak_megabytes())},
        "references_to_none": {"start": first[0][2], "end": last[-1][2]},
    }


def format_soak(results: dict) -> str:
    seconds, memory, nones = (results["seconds_per_description"], results["memory_mb"],
                              results["references_to_none"])
    lines = [f"descriptions          {results['descriptions']} ({results['errors']} failed)",
             f"time per description  {seconds['start'] * 1000:.0f} ms at the start, {seconds['end'] * 1000:.0f} ms "
             f"at the end (medians of {results['window']})",
             f"memory                {memory['start']:.0f} MB after {results['window']}, {memory['end']:.0f} MB at "
             f"the end, {memory['peak']:.0f} MB at most",
             f"references to None    {nones['start']} at the start, {nones['end']} at the end"]
    if results["first_error"]:
        lines.append(f"first error           {results['first_error']}")
    return "\n".join(lines)
