"""Our own voice: pyttsx3 with espeak-ng, in its thread, rendered to files that the test listens to."""

import shutil
import sys
import time
from pathlib import Path

from app_helpers import loudness
from captioner_gui.app.speech import Speaker

DESCRIPTIONS = ["A bunch of bananas on a table.", "A dog sitting on a couch next to a window.",
                "A red circle above a blue square."]


def test_three_descriptions_in_a_row_are_all_spoken_aloud(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTIONER_PLAYER", "true")  # a machine with a sound player (this one may have none)
    errors = []
    speaker = Speaker(record_dir=tmp_path, on_error=errors.append)
    try:
        for text in DESCRIPTIONS:
            speaker.say(text, interrupt=False)
            assert speaker.wait_until_quiet(30)  # one after the other, as a user drops three images
    finally:
        speaker.close()
    assert not errors
    files = sorted(tmp_path.glob("*.wav"))
    assert [f.name for f in files] == ["001.wav", "002.wav", "003.wav"]
    for path, text in zip(files, DESCRIPTIONS):
        seconds, rms = loudness(path)
        assert 0.8 < seconds < 10, (text, seconds)  # a sentence takes a second or a few
        assert rms > 300, (text, rms)  # not silent


def test_rate_and_voice_settings_change_the_speech(tmp_path):
    speaker = Speaker(record_dir=tmp_path)
    try:
        speaker.configure(rate=120)
        speaker.say(DESCRIPTIONS[0])
        speaker.configure(rate=300)
        speaker.say(DESCRIPTIONS[0], interrupt=False)
        assert speaker.wait_until_quiet(30)
        voices = speaker.voices()
    finally:
        speaker.close()
    slow, fast = (loudness(tmp_path / name)[0] for name in ("001.wav", "002.wav"))
    assert slow > 1.8 * fast
    assert len(voices) > 1 and all(v.id and v.name for v in voices)


def test_a_new_description_cuts_off_the_one_being_spoken(tmp_path, monkeypatch):
    # A stand-in player that notes when it starts and takes 3 s per sound, as a long description would.
    log = tmp_path / "player.log"
    player = tmp_path / "player.py"
    player.write_text("import sys, time\n"
                      f"open({str(log)!r}, 'a').write(f'{{time.time()}} {{sys.argv[1]}}\\n')\n"
                      "time.sleep(3)\n")
    monkeypatch.setenv("CAPTIONER_PLAYER", f"{sys.executable} {player}")
    speaker = Speaker(record_dir=tmp_path / "spoken")
    try:
        speaker.say("The first description, which is long.")
        time.sleep(1.0)
        asked = time.time()
        speaker.say("The second one.")  # interrupts
        speaker.say("A third, queued after the second.", interrupt=False)
        time.sleep(0.5)
        speaker.stop()  # Escape: silence, and the third is dropped
        assert speaker.wait_until_quiet(10)
    finally:
        speaker.close()
    starts = [float(line.split()[0]) for line in log.read_text().splitlines()]
    assert len(starts) == 2  # the first and the second; the stop came before the third
    assert starts[1] - asked < 1.0  # the second did not wait for the first to finish


def test_a_spoken_sound_file_is_deleted_once_played(tmp_path, monkeypatch):
    """Without CAPTIONER_SPEECH_DIR no spoken words stay on disk: the player (a stand-in that notes and copies what
    it plays) gets a file that is gone as soon as it has played."""
    log, copy, player = tmp_path / "played.log", tmp_path / "heard.wav", tmp_path / "player.py"
    player.write_text("import shutil, sys\n"
                      f"open({str(log)!r}, 'a').write(sys.argv[1] + '\\n')\n"
                      f"shutil.copyfile(sys.argv[1], {str(copy)!r})\n")
    monkeypatch.setenv("CAPTIONER_PLAYER", f"{sys.executable} {player}")
    speaker = Speaker()
    try:
        speaker.say(DESCRIPTIONS[0])
        assert speaker.wait_until_quiet(30)
        [played] = log.read_text().splitlines()
        assert loudness(copy)[1] > 300  # it was spoken
        assert not Path(played).exists()  # and deleted at once, while the speaker goes on
    finally:
        speaker.close()


def test_pyttsx3_renders_three_descriptions_in_a_row(tmp_path):
    """pyttsx3 speaks on Windows and macOS (and on Linux when only the espeak library is there); here it runs
    its espeak driver."""
    from captioner_gui.app.speech import Pyttsx3Engine

    engine = Pyttsx3Engine()
    for index, text in enumerate(DESCRIPTIONS):
        path = tmp_path / f"{index}.wav"
        assert engine.write(text, path, "", 180, 1.0), text
        seconds, rms = loudness(path)
        assert 0.8 < seconds < 10 and rms > 300, (text, seconds, rms)
    assert len(engine.voices()) > 1


def test_descriptions_go_to_speech_dispatcher_while_orca_runs(tmp_path, monkeypatch):
    """Linux: with Orca running, text goes through Speech Dispatcher (here a stand-in spd-say that notes what
    it is asked), and stops when Orca is gone."""
    import os
    import subprocess

    from captioner_gui.app import screen_reader

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "spd-say.log"
    (bin_dir / "spd-say").write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n")
    # A loop, so that the shell does not replace itself with `sleep` (and stop being named orca).
    (bin_dir / "orca").write_text("#!/bin/sh\nwhile true; do sleep 1; done\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert screen_reader.detect() is None  # no Orca yet: our own voice
    orca = subprocess.Popen([str(bin_dir / "orca")])
    try:
        deadline = time.time() + 10
        while not screen_reader.orca_running() and time.time() < deadline:  # until the shell has started it
            time.sleep(0.05)
        reader = screen_reader.detect()
        assert isinstance(reader, screen_reader.SpeechDispatcher)
        # The app's words and a Chinese line read from the screen: each with its language, in order.
        reader.speak_parts([("Screenshot: 1 line of text.", "en"), ("出口在左边。", "zh")])
        deadline = time.time() + 5
        while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
            time.sleep(0.05)
        assert log.read_text().splitlines() == ["--cancel", "--priority text --language en -- Screenshot: 1 line of text.",
                                                "--priority text --language zh -- 出口在左边。"]
        # A follow-up (the rest of a text) is queued behind what is being said, never cancelling it.
        reader.speak_parts([("The rest.", "en")], interrupt=False)
        while time.time() < deadline and len(log.read_text().splitlines()) < 4:
            time.sleep(0.05)
        assert log.read_text().splitlines()[3:] == ["--priority text --language en -- The rest."]
        reader.stop()
        while time.time() < deadline and len(log.read_text().splitlines()) < 5:
            time.sleep(0.05)
        assert log.read_text().splitlines()[4:] == ["--cancel"]
    finally:
        orca.kill()
        orca.wait()
    assert screen_reader.detect() is None


def test_text_in_another_language_is_spoken_with_a_voice_of_that_language(tmp_path):
    """A Chinese line read from the screen is said by espeak-ng's Mandarin voice, the app's own words by the
    user's voice: the recorded sound is exactly what `espeak-ng -v cmn` makes of the line."""
    import shutil
    import subprocess
    from types import SimpleNamespace

    from captioner_gui.app.speech import SpeechRoute

    chinese = "今天下午三点在会议室开会。"
    speaker = Speaker(record_dir=tmp_path / "said")
    settings = SimpleNamespace(speech=True, use_screen_reader=False)
    try:
        SpeechRoute(speaker, settings).say([("Page of text, 1 line.", "en"), (chinese, "zh")])
        assert speaker.wait_until_quiet(30)
    finally:
        speaker.close()
    first, second = sorted((tmp_path / "said").glob("*.wav"))
    for voice, path in (("cmn", tmp_path / "mandarin.wav"), ("en", tmp_path / "english.wav")):
        subprocess.run([shutil.which("espeak-ng"), "-w", str(path), "-s", "180", "-a", "100", "-v", voice, "--",
                        chinese], check=True)
    assert second.read_bytes() == (tmp_path / "mandarin.wav").read_bytes()
    assert second.read_bytes() != (tmp_path / "english.wav").read_bytes()
    assert loudness(second)[1] > 300 and loudness(first)[1] > 300


def only_espeak_on_path(tmp_path, monkeypatch, plays: bool) -> Path:
    """A PATH with espeak-ng and no sound player. espeak-ng is a wrapper that logs its arguments; a call that is not
    writing a file (-w) ends as if it had played (`plays`), or fails as espeak-ng does without a sound device."""
    real = shutil.which("espeak-ng")
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "espeak.log"
    wrapper = folder / "espeak-ng"
    playing = "exit 0" if plays else "echo 'error: No such file or directory' >&2; exit 0"
    played = f'case " $* " in *" -w "*) ;; *) {playing};; esac\n'
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\n{played}exec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv("CAPTIONER_PLAYER", raising=False)
    return log


def test_without_a_sound_player_espeak_plays_the_words_itself(tmp_path, monkeypatch):
    log = only_espeak_on_path(tmp_path, monkeypatch, plays=True)
    errors = []
    speaker = Speaker(on_error=errors.append)
    try:
        speaker.say(DESCRIPTIONS[0])
        assert speaker.wait_until_quiet(30)
    finally:
        speaker.close()
    calls = log.read_text().splitlines()
    assert any(DESCRIPTIONS[0] in call and " -w " not in f" {call} " for call in calls), calls
    assert errors == []


def test_when_nothing_can_play_the_user_is_told_once(tmp_path, monkeypatch):
    only_espeak_on_path(tmp_path, monkeypatch, plays=False)
    errors = []
    speaker = Speaker(record_dir=tmp_path / "speech", on_error=errors.append)
    try:
        for text in DESCRIPTIONS:
            speaker.say(text, interrupt=False)
        assert speaker.wait_until_quiet(30)
    finally:
        speaker.close()
    assert len(errors) == 1 and errors[0].startswith("Speech cannot be heard: no sound player was found"), errors
    assert "\n" not in errors[0]
    assert len(list((tmp_path / "speech").glob("*.wav"))) == 3  # the copies for troubleshooting are still written


def test_a_follow_up_waits_for_the_screen_reader_and_only_a_new_request_cuts_it_off(monkeypatch):
    """The speechd module, NVDA's controller and Tolk: the rest of a text is queued behind its start (cancelling it
    cut off the start: "harb—"); a new request silences what is being said first."""
    import types

    from captioner_gui.app import screen_reader

    calls = []

    class Client:
        def __init__(self, name):
            pass

        def __getattr__(self, method):
            return lambda *args: calls.append((method, *args))

    monkeypatch.setitem(sys.modules, "speechd", types.SimpleNamespace(SSIPClient=Client,
                                                                       Priority=types.SimpleNamespace(TEXT="text")))
    reader = screen_reader.SpeechDispatcher()
    calls.clear()
    reader.speak_parts([("Notes. Harbour.", "en")])
    reader.speak_parts([("The rest.", "en")], interrupt=False)
    assert calls == [("cancel",), ("set_language", "en"), ("speak", "Notes. Harbour."),
                     ("set_language", "en"), ("speak", "The rest.")]

    class Library:
        def __getattr__(self, function):
            return lambda *args: calls.append((function, *[getattr(a, "value", a) for a in args])) or 0

    calls.clear()
    nvda = screen_reader.NvdaController(Library())
    nvda.speak("Notes.")
    nvda.speak("The rest.", interrupt=False)
    said = [call for call in calls if call[0] != "nvdaController_brailleMessage"]
    assert said == [("nvdaController_testIfRunning",), ("nvdaController_cancelSpeech",),
                    ("nvdaController_speakText", "Notes."), ("nvdaController_speakText", "The rest.")]

    library = Library()
    library.Tolk_DetectScreenReader = lambda: "JAWS"
    tolk = screen_reader.Tolk(library)
    calls.clear()
    tolk.speak("Notes.")
    tolk.speak("The rest.", interrupt=False)
    assert calls == [("Tolk_Output", "Notes.", True), ("Tolk_Output", "The rest.", False)]
