"""The translation step: captions said in the user's language with a translation model the user imported.

The model is tests/translation_model.py's: a tiny Marian transformer trained here to translate five ClipCap captions
into Simplified Chinese, converted with CTranslate2's converter as opus-mt is, and packed as an Argos package."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from captioner_gui import i18n
from captioner_gui.engine.translation import (INFO_NAME, CaptionTranslator, TranslationError, find_translation,
                                              list_translations, load_translator)
from captioner_gui.engine.translation_import import import_translation
from cli_helpers import one_line_error, run_captioner
from translation_model import PAIRS, build_translation_model

SIMPLIFIED = {english: simplified for english, (simplified, _traditional) in PAIRS.items()}


@pytest.fixture(scope="session")
def translation_files(tmp_path_factory):
    """{"argos": the .argosmodel package, "ctranslate2": the converted opus-mt-style folder}."""
    return build_translation_model(tmp_path_factory.mktemp("translation"))


@pytest.fixture
def chinese():
    """captioner speaks Simplified Chinese for the test."""
    before = i18n.current()
    i18n.use("zh_CN")
    yield
    i18n.use(before)


def test_an_argos_package_is_imported_and_translates_captions(translation_files, tmp_path):
    info = import_translation(translation_files["argos"], tmp_path)
    folder = tmp_path / "translations" / "en-zh"
    assert (info.source_language, info.target_language, info.format) == ("en", "zh", "argos")
    assert info.source == "translate-en_zh-1_0.argosmodel"
    assert (folder / "model" / "model.bin").is_file() and (folder / "sentencepiece.model").is_file()
    assert not (folder / "stanza").exists()  # Argos's sentence splitter: a caption is one sentence
    assert sorted(p.name for p in (tmp_path / "translations").iterdir()) == ["en-zh"]  # no import folder left
    # Like opus-mt-en-zh, the model answers in Traditional characters unless told ">>cmn_Hans<<".
    assert info.language_token == ">>cmn_Hans<<" and not info.add_source_eos
    translator = load_translator(tmp_path, "en", "zh")
    assert translator.translate(list(PAIRS)) == list(SIMPLIFIED.values())
    assert translator.translate(["", "  "]) == ["", ""]


def test_an_opus_mt_model_converted_to_ctranslate2_is_imported(translation_files, tmp_path):
    # Its languages come from its name, as ct2-transformers-converter users name it after the model.
    info = import_translation(translation_files["ctranslate2"], tmp_path / "models")
    assert (info.pair, info.format, info.source) == ("en-zh", "ctranslate2", "opus-mt-en-zh")
    assert info.add_source_eos and info.language_token == ">>cmn_Hans<<"
    translator = CaptionTranslator(tmp_path / "models" / "translations" / "en-zh")
    assert translator.pieces("A cat.")[0] == ">>cmn_Hans<<" and translator.pieces("A cat.")[-1] == "</s>"
    assert translator.translate(list(PAIRS)) == list(SIMPLIFIED.values())

    unnamed = shutil.copytree(translation_files["ctranslate2"], tmp_path / "my-model")
    with pytest.raises(TranslationError, match="--from en --to zh"):
        import_translation(unnamed, tmp_path / "other")
    assert import_translation(unnamed, tmp_path / "other", "en", "zh-CN").pair == "en-zh"


def test_the_command_imports_and_lists_a_translation_model(translation_files, tmp_path):
    result = run_captioner("models", "import-translation", translation_files["argos"], "--models-dir", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "en-zh" in result.stdout and str(tmp_path / "translations" / "en-zh") in result.stdout

    listing = run_captioner("models", "list", "--models-dir", tmp_path)
    assert listing.returncode == 0, listing.stderr
    [line] = [line for line in listing.stdout.splitlines() if "en-zh" in line]
    assert "translate-en_zh-1_0.argosmodel" in line and "KB" in line  # its size (the tiny model's)
    entries = json.loads(run_captioner("models", "list", "--json", "--models-dir", tmp_path).stdout)
    [entry] = [e for e in entries if e.get("kind") == "translation"]
    assert (entry["name"], entry["from"], entry["to"], entry["complete"]) == ("en-zh", "en", "zh", True)


def _package(path: Path, metadata: dict | None, files: dict[str, bytes], source: Path | None = None) -> Path:
    """An Argos-style zip: the tiny model's files (from `source`, a package) replaced or added by `files`."""
    top = "translate-test"
    with zipfile.ZipFile(path, "w") as archive:
        if source is not None:
            with zipfile.ZipFile(source) as original:
                for name in original.namelist():
                    relative = name.split("/", 1)[1]
                    if relative not in files and not (relative == "metadata.json" and metadata is not None):
                        archive.writestr(f"{top}/{relative}", original.read(name))
        if metadata is not None:
            archive.writestr(f"{top}/metadata.json", json.dumps(metadata))
        for relative, data in files.items():
            if data is not None:
                archive.writestr(f"{top}/{relative}", data)
    return path


def test_what_a_user_can_get_wrong_is_one_line(translation_files, tmp_path):
    package = translation_files["argos"]
    not_a_zip = tmp_path / "notes.argosmodel"
    not_a_zip.write_text("not a package")
    no_metadata = tmp_path / "no-metadata.zip"
    with zipfile.ZipFile(no_metadata, "w") as archive:
        archive.writestr("model/model.bin", b"weights")
    no_model = _package(tmp_path / "no-model.argosmodel", None, {"model/model.bin": None}, package)
    german = _package(tmp_path / "en_de.argosmodel", {"from_code": "en", "to_code": "de"}, {}, package)
    from_german = _package(tmp_path / "de_zh.argosmodel", {"from_code": "de", "to_code": "zh"}, {}, package)
    traditional = _package(tmp_path / "en_zt.argosmodel", {"from_code": "en", "to_code": "zt"}, {}, package)
    escaping = tmp_path / "escaping.argosmodel"
    with zipfile.ZipFile(escaping, "w") as archive:
        archive.writestr("../metadata.json", "{}")
    unwritable = tmp_path / "unwritable"
    unwritable.mkdir()
    (unwritable / "translations").write_text("a file where the folder must go")
    cases = [
        (not_a_zip, tmp_path / "m", "is neither an Argos Translate package"),
        (no_metadata, tmp_path / "m", "has no metadata.json"),
        (no_model, tmp_path / "m", "has no model/model.bin"),
        (german, tmp_path / "m", "translates into 'de', a language captioner does not speak"),
        (from_german, tmp_path / "m", "translates from 'de'"),
        (traditional, tmp_path / "m", "translates into 'zt'"),
        (escaping, tmp_path / "m", "holds a file outside its own folder"),
        (tmp_path / "missing.argosmodel", tmp_path / "m", "no such file or folder"),
        (tmp_path / "m", tmp_path / "m2", "has no model.bin"),  # a folder, but not a model
        (package, unwritable, "Could not write the translation model into"),
    ]
    (tmp_path / "m").mkdir()
    for source, models, words in cases:
        line = one_line_error(run_captioner("models", "import-translation", source, "--models-dir", models))
        assert words in line, (source, line)
        assert line.startswith("captioner: ")
    assert not (tmp_path / "m" / "translations" / "en-zh").exists()


def test_importing_again_replaces_the_model_and_a_failed_import_keeps_it(translation_files, tmp_path):
    import_translation(translation_files["argos"], tmp_path)
    damaged = _package(tmp_path / "damaged.argosmodel", None, {"model/model.bin": b"not a model"},
                       translation_files["argos"])
    with pytest.raises(TranslationError, match="could not be used as a translation model"):
        import_translation(damaged, tmp_path)
    folder = tmp_path / "translations" / "en-zh"
    assert json.loads((folder / INFO_NAME).read_text())["source"] == "translate-en_zh-1_0.argosmodel"
    translator = load_translator(tmp_path, "en", "zh")
    assert translator.translate(["A cat sitting on a sofa."]) == ["一只猫坐在沙发上。"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["en-zh"]

    info = import_translation(translation_files["ctranslate2"], tmp_path)  # the same pair again: replaced
    assert info.source == "opus-mt-en-zh" and info.format == "ctranslate2"
    assert not (folder / "sentencepiece.model").exists() and (folder / "source.spm").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["en-zh"]

    # Cut off after the old model was moved aside and before the new one came in: the old one comes back.
    folder.rename(folder.parent / ".en-zh.replaced")
    assert find_translation(tmp_path, "en", "zh") == folder
    assert [t.pair for t in list_translations(tmp_path)] == ["en-zh"]


def test_a_damaged_model_is_said_in_one_line(translation_files, tmp_path):
    import_translation(translation_files["argos"], tmp_path)
    (tmp_path / "translations" / "en-zh" / "model" / "model.bin").write_bytes(b"damaged")
    with pytest.raises(TranslationError, match="could not be loaded .* Import it again"):
        load_translator(tmp_path, "en", "zh")
    [listed] = list_translations(tmp_path)
    assert listed.info is not None  # the list says what it is; loading says what is wrong
    (tmp_path / "translations" / "en-zh" / INFO_NAME).write_text("{")
    [listed] = list_translations(tmp_path)
    assert listed.info is None and "damaged" in listed.problem


# ------------------------------------------------------------------------------------------------- in descriptions


class NoText:
    """A text reader that finds no text: these tests are about the captions."""

    timings: dict = {}

    def find(self, image, cancel=None):
        from captioner_gui.engine.ocr import Page

        return Page(None, 1, [])

    def recognize(self, page, boxes, cancel=None):
        return []


class WritesCaptions:
    """A captioner that writes the given English captions (one per picture, in turn) and sees photos."""

    name, language = "stand-in", "en"

    def __init__(self, *captions: str):
        self.captions = list(captions)

    def kinds(self, images):
        return [{"photo": 1.0}] * len(images)

    def caption(self, images, options=None):
        from captioner_gui.engine.captioner import Caption

        written = [self.captions.pop(0) for _image in images]
        return [Caption(text=text, tokens=[], score=0.0, seconds=0.0, kind="photo", kind_scores={"photo": 1.0},
                        agreement=0.3, language="en") for text in written]


def _describer(models_dir: Path, *captions: str):
    from captioner_gui.engine.describe import Describer

    return Describer(WritesCaptions(*captions), NoText(), models_dir=models_dir)


def _photo():
    from builders import noise_image

    return noise_image(3, (320, 240))


def _screen_with_two_photos():
    from PIL import Image

    from builders import noise_image

    screen = Image.new("RGB", (900, 600), (250, 250, 250))
    screen.paste(noise_image(4, (240, 180)), (40, 40))
    screen.paste(noise_image(5, (240, 180)), (560, 360))
    return screen


@pytest.fixture
def installed(translation_files, tmp_path):
    """A models folder with the translation model imported."""
    import_translation(translation_files["argos"], tmp_path)
    return tmp_path


def test_a_photo_is_said_in_chinese_and_its_english_kept(installed, chinese):
    cat = SIMPLIFIED["A cat sitting on a sofa."]
    described = _describer(installed, "A cat sitting on a sofa.").describe(_photo(), "photo.png")
    assert any(cat in words and language == "zh" for words, language in described.spoken_parts)
    assert not any("cat" in words for words, _language in described.spoken_parts)
    assert cat in described.caption and cat in described.lines()[0]
    details = described.as_json("photo.png")
    assert details["original"] == "A cat sitting on a sofa." and cat in details["spoken"]
    assert details["timings"]["translation"] > 0


def test_pictures_in_a_screenshot_are_said_in_chinese(installed, chinese):
    from captioner_gui.engine.options import Target

    describer = _describer(installed, "A man riding a horse on a beach.", "A red car parked on the street.")
    described = describer.describe(_screen_with_two_photos(), Target.SCREEN)
    assert [p.caption for p in described.pictures] == ["一个男人在海滩上骑马。", "一辆红色的汽车停在街上。"]
    said = " ".join(words for words, language in described.spoken_parts if language == "zh")
    assert "一个男人在海滩上骑马。" in said and "一辆红色的汽车停在街上。" in said
    assert [p["original"] for p in described.as_json("screen")["pictures"]] == [
        "A man riding a horse on a beach.", "A red car parked on the street."]


def test_without_a_translation_model_or_in_english_the_caption_stays_english(installed, tmp_path, chinese):
    described = _describer(tmp_path / "empty", "A cat sitting on a sofa.").describe(_photo(), "photo.png")
    assert ("A cat sitting on a sofa.", "en") in described.spoken_parts  # said by an English voice
    assert "original" not in described.as_json("photo.png")

    i18n.use("en")
    described = _describer(installed, "A cat sitting on a sofa.").describe(_photo(), "photo.png")
    assert described.spoken_parts == [("Photo: A cat sitting on a sofa.", "en")]
    assert "original" not in described.as_json("photo.png")


def test_a_model_imported_while_the_app_runs_is_used_at_once(translation_files, tmp_path, chinese):
    describer = _describer(tmp_path, "A cat sitting on a sofa.", "A cat sitting on a sofa.")
    assert describer.start_translator() is None  # none installed: nothing wrong
    assert describer.describe(_photo(), "photo.png").original is None
    import_translation(translation_files["argos"], tmp_path)
    assert describer.describe(_photo(), "photo.png").original == "A cat sitting on a sofa."


def test_a_damaged_model_is_said_once_and_the_caption_stays_english(installed, translation_files, chinese):
    (installed / "translations" / "en-zh" / "model" / "model.bin").write_bytes(b"damaged")
    describer = _describer(installed, "A cat sitting on a sofa.", "A cat sitting on a sofa.")
    problem = describer.start_translator()  # said in the user's language, with what to do
    assert problem.startswith(f"无法加载 {installed / 'translations' / 'en-zh'} 中的翻译模型")
    assert problem.endswith("captioner models import-translation FILE")
    described = describer.describe(_photo(), "photo.png")
    assert any("A cat sitting on a sofa." in words and language == "en" for words, language in described.spoken_parts)

    import_translation(translation_files["argos"], installed)  # imported again, as the message says: used at once
    described = describer.describe(_photo(), "photo.png")
    assert described.original == "A cat sitting on a sofa." and "一只猫坐在沙发上。" in described.caption


def test_captioner_caption_prints_the_translation_and_keeps_the_english(installed, tiny_mlp, tmp_path):
    from builders import noise_image

    image = tmp_path / "photo.png"
    noise_image(0, (64, 64)).save(image)
    common = ("caption", image, "--model", tiny_mlp.folder, "--device", "cpu", "--decoding", "greedy",
              "--max-tokens", "12", "--models-dir", installed)
    english = run_captioner(*common, "--json")
    assert english.returncode == 0, english.stderr
    [written] = json.loads(english.stdout)
    assert written["caption"] and written["language"] == "en" and "original" not in written

    chinese = run_captioner("--language", "zh_CN", *common, "--json")
    assert chinese.returncode == 0, chinese.stderr
    [translated] = json.loads(chinese.stdout)
    assert translated["original"] == written["caption"] and translated["language"] == "zh"
    assert any("\u4e00" <= c <= "\u9fff" for c in translated["caption"]), translated  # Chinese characters
    printed = run_captioner("--language", "zh_CN", *common)
    assert printed.stdout.strip() == translated["caption"]


def test_no_captioning_model_may_be_named_after_the_translations_folder(installed, translation_files):
    from captioner_gui.engine import CaptionerError, import_model

    with pytest.raises(CaptionerError, match="folder of the translation models"):
        import_model(translation_files["argos"], "translations", installed)
    assert find_translation(installed, "en", "zh") is not None
