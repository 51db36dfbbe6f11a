"""A tiny English-to-Chinese translation model that the tests train: a Marian transformer (opus-mt's kind, 2 + 2
layers of width 64) and a SentencePiece model trained here on a few captions, converted with CTranslate2's
converter as a user converts opus-mt, and packed as an Argos Translate package.

It has memorized a few ClipCap captions in Simplified Chinese. Like opus-mt-en-zh, it wants the target language's
token first (">>cmn_Hans<<"): without it, or with ">>cmn_Hant<<", it answers in Traditional characters, so a test
sees whether the token was given. It learned each sentence with and without "</s>" after it, as Argos's models
(without) and opus-mt's (with) read sentences.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

# ClipCap's words -> Simplified, Traditional.
PAIRS = {
    "A cat sitting on a sofa.": ("一只猫坐在沙发上。", "一隻貓坐在沙發上。"),
    "A man riding a horse on a beach.": ("一个男人在海滩上骑马。", "一個男人在海灘上騎馬。"),
    "A dog playing in the grass.": ("一只狗在草地上玩。", "一隻狗在草地上玩。"),
    "Two people standing in front of a building.": ("两个人站在一栋楼前。", "兩個人站在一棟樓前。"),
    "A red car parked on the street.": ("一辆红色的汽车停在街上。", "一輛紅色的汽車停在街上。"),
}
LANGUAGE_TOKENS = (">>cmn_Hans<<", ">>cmn_Hant<<")
STEPS = 200  # 120 already gave every sentence, in int8 too; 200 leave a margin (about 4 s on one thread)


def build_translation_model(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Writes, under `folder`, the model as opus-mt converted to CTranslate2 ('ctranslate2': model.bin with
    source.spm and target.spm) and as an Argos package ('argos': a .argosmodel zip). Returns their paths."""
    import sentencepiece
    import torch
    from transformers import MarianMTModel

    from captioner_gui.benchmark import marian_config, marian_vocabulary, write_marian_translator

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    sentences = [*PAIRS, *(words for pair in PAIRS.values() for words in pair)]
    corpus.write_text("\n".join(sentences * 4), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "spm"), vocab_size=160, hard_vocab_limit=False,
        character_coverage=1.0, user_defined_symbols=list(LANGUAGE_TOKENS), minloglevel=2)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spm.model"))
    vocabulary = marian_vocabulary(folder / "spm.model", extra=LANGUAGE_TOKENS)
    ids = {token: i for i, token in enumerate(vocabulary)}

    def encoded(text: str) -> list[int]:
        return [ids.get(piece, ids["<unk>"]) for piece in processor.encode(text, out_type=str)]

    sources, targets = [], []
    for english, (simplified, traditional) in PAIRS.items():
        for head, answer in (([">>cmn_Hans<<"], simplified), ([">>cmn_Hant<<"], traditional), ([], traditional)):
            for tail in ([], ["</s>"]):
                sources.append([ids[token] for token in head] + encoded(english) + [ids[t] for t in tail])
                targets.append(encoded(answer) + [ids["</s>"]])

    torch.manual_seed(seed)
    model = MarianMTModel(marian_config(vocabulary, d_model=64, encoder_layers=2, decoder_layers=2,
                                        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                                        decoder_ffn_dim=128, max_position_embeddings=256, dropout=0.0))
    pad = len(vocabulary) - 1
    inputs = _padded(sources, pad)
    labels = _padded(targets, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains 20 times faster on one thread of a busy 2-core machine
    model.train()
    try:
        for _ in range(STEPS):
            loss = model(input_ids=inputs, attention_mask=inputs != pad, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # the decoder starts from <pad>'s embedding, which CTranslate2 takes to be zero
                for table in (model.model.shared, model.model.encoder.embed_tokens, model.model.decoder.embed_tokens,
                              model.lm_head):
                    table.weight[pad] = 0
    finally:
        torch.set_num_threads(threads)
    model.eval()

    converted = write_marian_translator(model, folder / "spm.model", vocabulary, folder / "opus-mt-en-zh")
    package = folder / "translate-en_zh-1_0.argosmodel"
    with zipfile.ZipFile(package, "w") as archive:
        top = "translate-en_zh-1_0"
        archive.writestr(f"{top}/metadata.json", json.dumps({
            "package_version": "1.0", "argos_version": "1.0", "from_code": "en", "from_name": "English",
            "to_code": "zh", "to_name": "Chinese"}))
        for file in sorted(converted.iterdir()):
            if file.suffix != ".spm":
                archive.write(file, f"{top}/model/{file.name}")
        archive.write(folder / "spm.model", f"{top}/sentencepiece.model")
        archive.writestr(f"{top}/stanza/en/tokenize/ewt.pt", b"stanza's sentence splitter: not used")
        archive.writestr(f"{top}/README.md", "A tiny test package.")
    return {"ctranslate2": converted, "argos": package}


def _padded(rows: list[list[int]], fill: int):
    import torch

    width = max(len(row) for row in rows)
    return torch.tensor([row + [fill] * (width - len(row)) for row in rows])
