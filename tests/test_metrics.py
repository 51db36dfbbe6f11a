"""`captioner evaluate --predictions --references` agrees with pycocoevalcap's scorers on the same input."""

import json
import os
import random
import shutil

import pytest

from cli_helpers import run_captioner


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    """References from the synthetic set, predictions that are partly right, partly wrong."""
    from captioner_gui.training.synth import write_synthetic_set

    folder = tmp_path_factory.mktemp("metrics")
    write_synthetic_set(folder / "synth", 60, seed=4)
    references = json.loads((folder / "synth" / "captions_test.json").read_text())
    by_image = {}
    for annotation in references["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation["caption"])
    rng = random.Random(0)
    ids = sorted(by_image)
    predictions = []
    for n, image_id in enumerate(ids):
        if n % 3 == 0:
            caption = by_image[image_id][0]  # exactly right
        elif n % 3 == 1:
            words = by_image[image_id][1].split()
            caption = " ".join(w for i, w in enumerate(words) if i != 1)  # one word missing
        else:
            caption = by_image[rng.choice([i for i in ids if i != image_id])][0]  # another picture's
        predictions.append({"image_id": image_id, "caption": caption})
    (folder / "predictions.json").write_text(json.dumps(predictions))
    return folder / "predictions.json", folder / "synth" / "captions_test.json", predictions, by_image


def pycocoevalcap_scores(predictions, by_image):
    """What COCOEvalCap computes: PTB tokenization, then each scorer (SPICE left out: it needs a download)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ids = [p["image_id"] for p in predictions]
    gts = PTBTokenizer().tokenize({i: [{"caption": c} for c in by_image[i]] for i in ids})
    res = PTBTokenizer().tokenize({p["image_id"]: [{"caption": p["caption"]}] for p in predictions})
    bleu = Bleu(4).compute_score(gts, res)[0]
    return {"BLEU-1": bleu[0], "BLEU-2": bleu[1], "BLEU-3": bleu[2], "BLEU-4": bleu[3],
            "METEOR": Meteor().compute_score(gts, res)[0], "ROUGE-L": Rouge().compute_score(gts, res)[0],
            "CIDEr": Cider().compute_score(gts, res)[0]}


def test_scores_agree_with_pycocoevalcap(coco_files):
    predictions_path, references_path, predictions, by_image = coco_files
    result = run_captioner("evaluate", "--predictions", predictions_path, "--references", references_path, "--json")
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    expected = pycocoevalcap_scores(predictions, by_image)
    assert list(ours) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    assert ours == pytest.approx(expected, abs=1e-9)
    assert 0.3 < ours["BLEU-4"] < 0.95 and ours["CIDEr"] > 1.0  # fractions, partly right


def test_without_java_the_fallback_tokenizer_is_used_and_said(coco_files, tmp_path):
    predictions_path, references_path, predictions, by_image = coco_files
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("python3") or os.sys.executable, bin_dir / "python3")
    result = run_captioner("evaluate", "--predictions", predictions_path, "--references", references_path, "--json",
                           env={"PATH": str(bin_dir)})
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    assert ours["METEOR"] is None and "Java was not found" in result.stderr
    expected = pycocoevalcap_scores(predictions, by_image)
    for name in ("BLEU-4", "ROUGE-L", "CIDEr"):
        assert ours[name] == pytest.approx(expected[name], rel=0.02)


def test_bad_results_files_get_a_clear_message(coco_files, tmp_path):
    _, references_path, _, _ = coco_files
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"image_id": 123456, "caption": "a cat."}]))
    result = run_captioner("evaluate", "--predictions", wrong, "--references", references_path)
    assert result.returncode == 1 and "123456" in result.stderr and "Traceback" not in result.stderr
    wrong.write_text("{not json")
    result = run_captioner("evaluate", "--predictions", wrong, "--references", references_path)
    assert result.returncode == 1 and "not valid JSON" in result.stderr
