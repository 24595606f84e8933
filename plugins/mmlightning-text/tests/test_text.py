"""mmlightning-text: tokenizer training and loading, processing, padding masks, the encoder contract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmlightning.testing import check_encoder
from mmlightning_text import TextEncoder
from mmlightning_text.tokenizer import train_tokenizer

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "cats and dogs play", "the park is green and large"] * 5


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_trained_tokenizer_wraps_texts_in_cls_and_sep(kind):
    tokenizer = train_tokenizer(TEXTS, kind, vocab_size=120)
    tokens = tokenizer.encode("the cat ran").tokens
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) >= 5
    assert tokenizer.token_to_id("[PAD]") == 0


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_encoder_contract(tmp_path, positions, pooling):
    encoder = TextEncoder(dim=16, layers=1, heads=2, vocab_size=100, positions=positions, pooling=pooling)
    check_encoder(encoder, TEXTS[:4], tmp_path)


def test_vocabulary_learnt_from_data_sizes_the_embedding():
    encoder = TextEncoder(dim=8, layers=1, heads=2, vocab_size=5000)
    encoder.fit(TEXTS)
    assert encoder.embed.num_embeddings == encoder.tokenizer.get_vocab_size() < 5000


def test_tokenizer_file_is_loaded(tmp_path):
    path = tmp_path / "tokenizer.json"
    train_tokenizer(TEXTS, "wordpiece", 90).save(str(path))
    encoder = TextEncoder(dim=8, layers=1, heads=2, tokenizer_file=str(path))
    assert encoder.is_fitted and encoder.embed.num_embeddings == encoder.tokenizer.get_vocab_size()


def test_processor_pads_truncates_and_rejects_empty_text():
    encoder = TextEncoder(dim=8, layers=1, heads=2, vocab_size=100, max_length=6)
    encoder.fit(TEXTS)
    processor = encoder.processor()
    batch = processor.batch(
        [processor("the cat", Path("."), False), processor("the park is green and large and more", Path("."), False)]
    )
    assert batch["ids"].shape == (2, 6) and batch["mask"].sum(1).tolist() == [4, 6]
    assert (batch["ids"][0, 4:] == 0).all()
    for bad, reason in [("", "empty text"), ("   ", "empty text"), (3, "expected text or a list of words, got int")]:
        with pytest.raises(ValueError, match=reason):
            processor.check(bad, Path("."))


def test_padding_does_not_change_the_encoding():
    torch.manual_seed(0)
    encoder = TextEncoder(dim=16, layers=2, heads=2, vocab_size=100).eval()
    encoder.fit(TEXTS)
    processor = encoder.processor()
    short = processor("the cat", Path("."), False)
    alone = encoder(processor.batch([short])).pooled
    padded = encoder(processor.batch([short, processor("a dog ran in the park and more", Path("."), False)])).pooled[:1]
    assert torch.allclose(alone, padded, atol=1e-5)


def test_a_list_of_words_maps_every_sub_word_back_to_its_word(tmp_path):
    encoder = TextEncoder(dim=8, layers=1, heads=2, vocab_size=60, lowercase=False)
    encoder.fit([["Peter", "Blackburn", "visited", "Brussels"], "a plain text also trains the tokenizer"])
    processor = encoder.processor()
    item = processor(["Peter", "Blackburnshire", "."], tmp_path, train=False)
    words = item["word_ids"].tolist()
    assert words[0] == -1 and words[-1] == -1  # [CLS] ... [SEP]
    assert sorted(set(words[1:-1])) == [0, 1, 2] and words[1:-1] == sorted(words[1:-1])
    batch = processor.batch([item, None])
    assert batch["word_ids"].shape == batch["ids"].shape and (processor.blank()["word_ids"] == -1).all()
    with pytest.raises(ValueError, match="non-empty words"):
        processor.check(["ok", ""], tmp_path)


def test_conll_reader_gives_a_sentence_per_row_and_reports_broken_ones(tmp_path):
    from mmlightning_text import ConllReader

    path = tmp_path / "train.txt"
    path.write_text(
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\nBlackburn NNP\n\n\nBRUSSELS NNP B-NP B-LOC\n"
    )
    rows, bad = ConllReader().read(path)
    assert [r.line for r in rows] == [3, 10]
    assert rows[0].values == {
        "tokens": ["EU", "rejects"],
        "tags": ["B-ORG", "O"],
        "column2": ["NNP", "VBZ"],
        "column3": ["B-NP", "B-VP"],
    }
    assert len(bad) == 1 and bad[0].line == 6 and "line 7 has 2 columns" in bad[0].reason


def test_a_learnt_tokenizer_is_the_same_in_every_process():
    """tokenizers' own WordPiece trainer breaks ties in hash order, which differs between processes."""
    import subprocess
    import sys

    code = (
        "from mmlightning_text.tokenizer import train_tokenizer; "
        "texts = [f'the {c} {s} sits {p} a {c}{s} thing' for c in ['red', 'blue', 'green'] for s in ['circle', 'square'] "
        "for p in ['on', 'under', 'beside']]; print(train_tokenizer(texts, 'wordpiece', 80).to_str())"
    )
    first, second = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    )
    assert first == second and '"[MASK]":4' in first.replace(" ", "")


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_a_huge_text_is_cut_before_tokenising_with_the_same_tokens(kind, monkeypatch):
    from mmlightning_text import processor as module

    processor = module.TextProcessor(train_tokenizer(TEXTS, kind, vocab_size=120), max_length=16, case=True)
    huge = " ".join(TEXTS) * 2_000  # about 1 MB
    seen: list[int] = []
    tokenizer = processor.tokenizer
    monkeypatch.setattr(processor, "tokenizer", _Counting(tokenizer, seen))
    cut = processor(huge, Path("."), False)
    assert seen == [16 * module.CHARS_PER_TOKEN]  # only the head was tokenised
    whole = tokenizer.encode(huge)  # the whole string, as before
    assert cut["ids"].tolist() == whole.ids and cut["word_ids"].tolist() == [
        -1 if w is None else w for w in whole.word_ids
    ]
    seen.clear()
    spaced = "cat " + " " * 600 + "dog " * 200  # the tokens kept end late in the cut: the whole string is read
    assert processor(spaced, Path("."), False)["ids"].tolist() == tokenizer.encode(spaced).ids
    if kind == "wordpiece":  # spaces make no tokens there (byte-level BPE gives them tokens, and keeps the cut)
        assert seen == [16 * module.CHARS_PER_TOKEN, len(spaced)]


class _Counting:
    """A tokenizer that records the length of every string it encodes."""

    def __init__(self, tokenizer, seen: list[int]) -> None:
        self.tokenizer, self.seen = tokenizer, seen

    def encode(self, value, **kwargs):
        self.seen.append(len(value))
        return self.tokenizer.encode(value, **kwargs)
