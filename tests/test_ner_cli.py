"""NER from the command line: CoNLL files through a plugin's reader, tags per word, entity-level F1."""

from __future__ import annotations

import json
import random
from pathlib import Path

from conftest import main_in

PEOPLE = ["Peter Blackburn", "Anna Schmidt", "John", "Maria Lopez", "Wei Chen"]
PLACES = ["Brussels", "New York", "Paris", "Lagos", "Berlin"]


def write_conll(path: Path, count: int, rng: random.Random) -> Path:
    """Sentences like 'Anna Schmidt visited New York .' in CoNLL-2003 columns (token POS chunk NER)."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(count):
        person, place = rng.choice(PEOPLE).split(), rng.choice(PLACES).split()
        tags = (
            [("B-PER" if i == 0 else "I-PER") for i in range(len(person))]
            + ["O"]
            + [("B-LOC" if i == 0 else "I-LOC") for i in range(len(place))]
            + ["O"]
        )
        words = person + [rng.choice(["visited", "left", "loves"])] + place + ["."]
        lines += [f"{w} NNP B-NP {t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_ner_with_masked_language_modelling_reports_entity_f1_and_predict_writes_tags(tmp_path):
    rng = random.Random(0)
    train, valid = write_conll(tmp_path / "train.txt", 120, rng), write_conll(tmp_path / "valid.txt", 30, rng)
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 3,
            "enable_progress_bar": False,
            "logger": False,
            "enable_model_summary": False,
            "default_root_dir": str(tmp_path),
        },
        "model": {
            "encoders": {
                "tokens": {
                    "class_path": "TextEncoder",
                    "init_args": {"dim": 32, "layers": 1, "heads": 2, "vocab_size": 120, "lowercase": False},
                }
            },
            "fusion": {"class_path": "SingleStreamFusion", "init_args": {"dim": 32, "layers": 1, "heads": 2}},
            "heads": {
                "tags": {"class_path": "TokenClassificationHead", "init_args": {"modality": "tokens"}},
                "mlm": {"class_path": "MaskedLanguageHead", "init_args": {"modality": "tokens"}},
            },  # and MLM beside it
            "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.005}},
        },
        "data": {
            "train": str(train),
            "val": str(valid),
            "predict": str(valid),
            "reader": "ConllReader",
            "batch_size": 16,
        },
    }
    results = main_in(tmp_path, config, "fit", "--trainer.enable_checkpointing=true")
    main_in(
        tmp_path,
        config,
        "predict",
        f"--ckpt_path={results['checkpoint']}",
        f"--predictions_path={tmp_path / 'pred.jsonl'}",
    )
    assert {
        "val/tags/precision",
        "val/tags/recall",
        "val/tags/f1",
        "val/tags/f1/PER",
        "val/tags/f1/LOC",
        "val/mlm/acc",
        "val/mlm/perplexity",
    } <= set(results)
    assert results["val/tags/f1"] > 0.5, results  # names and places are easy to learn here
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(rows) == 30 and rows[0]["id"] == "valid.txt:3"
    from mmlightning_text import ConllReader

    sentences = ConllReader().read(valid)[0]
    assert [len(row["tags"]) for row in rows] == [len(s.values["tokens"]) for s in sentences]  # a tag per word
    assert set().union(*(row["tags"] for row in rows)) <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}


def test_ner_with_a_pretrained_uncased_model_case_features_and_a_crf(tmp_path):
    """The path of docs/configs/conll2003_minilm.yaml on a tiny BERT: an uncased tokenizer, `case: true` on the
    encoder and `crf: true` on the head, from the CLI; the tags predicted follow the IOB2 scheme."""
    import pytest

    pytest.importorskip("transformers")
    from tuning_helpers import tiny_bert

    rng = random.Random(1)
    train, valid = write_conll(tmp_path / "train.txt", 120, rng), write_conll(tmp_path / "valid.txt", 30, rng)
    bert = tiny_bert(tmp_path / "bert") if (tmp_path / "bert").mkdir() is None else None
    config = {
        "seed_everything": 0,
        "trainer": {"max_epochs": 4, "enable_progress_bar": False, "logger": False, "enable_model_summary": False},
        "model": {
            "encoders": {
                "tokens": {"class_path": "PretrainedTextEncoder", "init_args": {"model_path": str(bert), "case": True}}
            },
            "fusion": {"class_path": "SingleStreamFusion", "init_args": {"dim": 32, "layers": 0}},
            "heads": {
                "tags": {"class_path": "TokenClassificationHead", "init_args": {"modality": "tokens", "crf": True}}
            },
            "optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.003}},
        },
        "data": {
            "train": str(train),
            "val": str(valid),
            "predict": str(valid),
            "reader": "ConllReader",
            "batch_size": 16,
        },
    }
    config["trainer"]["default_root_dir"] = str(tmp_path)
    results = main_in(tmp_path, config, "fit", "--trainer.enable_checkpointing=true")
    assert results["val/tags/f1"] > 0.5, results  # the names are [UNK] to this tokenizer: capitals tell them apart
    main_in(
        tmp_path,
        config,
        "predict",
        f"--ckpt_path={results['checkpoint']}",
        f"--predictions_path={tmp_path / 'p.jsonl'}",
    )
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 30
    for row in rows:  # Viterbi within the IOB2 rules: no I- tag that does not continue its entity
        tags = row["tags"]
        assert all(not t.startswith("I-") or (p != "O" and p[2:] == t[2:]) for p, t in zip(["O", *tags], tags)), tags
