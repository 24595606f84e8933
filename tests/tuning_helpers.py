"""Small models and batches for the fine-tuning tests."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from mmlightning import MultimodalDataModule, MultimodalModule
from mmlightning.binding import bind
from mmlightning_fusions import ConcatFusion
from mmlightning_heads import ClassificationHead
from mmlightning_text import TextEncoder
from mmlightning_vision import TimmEncoder


def build(
    data: Path, tuning: list | None = None, text: Any = None, fusion: Any = None, **kwargs: Any
) -> tuple[MultimodalModule, Any]:
    """A fitted text + image model on the shapes data (ConcatFusion unless ``fusion``), and its datamodule."""
    torch.manual_seed(0)
    encoders = {
        "text": text or TextEncoder(dim=16, layers=2, heads=2, vocab_size=80),
        "image": TimmEncoder("test_resnet", image_size=32, augment=False),
    }
    model = MultimodalModule(
        encoders,
        fusion or functools.partial(ConcatFusion, dim=16),
        {"label": ClassificationHead},
        tuning=tuning,
        **kwargs,
    )
    dm = MultimodalDataModule(train=str(data / "train.jsonl"), val=str(data / "val.jsonl"), batch_size=16)
    dm.setup("fit")
    bind(model, dm)
    return model, dm


def first_batch(dm: Any) -> Any:
    return next(iter(dm.train_dataloader()))


def grads_after_step(model: MultimodalModule, batch: Any) -> set[str]:
    """The parameters (named as in the model: ``encoders.text...``) that get a gradient from one training loss."""
    model.train()
    model.zero_grad()
    loss, _ = model._step(batch, "train")
    loss.backward()
    return {n for n, p in model.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def trainer(tmp_path: Path, epochs: int = 1, **kwargs: Any) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        deterministic=True,
        **kwargs,
    )


def tiny_bert(folder: Path) -> Path:
    """A 2-layer BERT with its own WordPiece tokenizer, saved as a Hugging Face folder."""
    import transformers

    from mmlightning_text.tokenizer import train_tokenizer

    texts = ["a red circle", "a blue square", "a green triangle", "the shape is small"]
    tokenizer = train_tokenizer(texts, "wordpiece", 100)
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


ENCODERS = {
    "text": {"class_path": "TextEncoder", "init_args": {"dim": 16, "layers": 2, "heads": 2, "vocab_size": 80}},
    "image": {
        "class_path": "TimmEncoder",
        "init_args": {"model_name": "test_resnet", "image_size": 32, "augment": False},
    },
}


def cli_fit(
    data: Path,
    work: Path,
    epochs: int = 2,
    train: str = "train.jsonl",
    val: str = "val.jsonl",
    heads: Any = None,
    **model: Any,
) -> Any:
    """``mmlightning fit`` (through the Python API) with the model :func:`build` makes, in ``work``."""
    import os

    import mmlightning

    here = os.getcwd()
    os.chdir(work)
    try:
        run = mmlightning.fit(
            train=str(Path(data) / train),
            val=str(Path(data) / val),
            encoders=ENCODERS,
            fusion={"class_path": "ConcatFusion", "init_args": {"dim": 16}},
            heads=heads or {"label": "ClassificationHead"},
            max_epochs=epochs,
            model=model,
            data={"batch_size": 16},
            trainer={"logger": False, "enable_progress_bar": False},
        )
        run.checkpoint = str(work / run.checkpoint)
        run.folder = work / run.folder
        return run
    finally:
        os.chdir(here)
