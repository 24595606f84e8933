"""Text-to-image generation (DALL-E style): a Transformer writes an image tokenizer's codes, one cell after another,
attending to a text encoder's tokens."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlightning import Batch, Features, Head, HeadOutput
from mmlightning.errors import ConfigError
from mmlightning.features import masked_mean
from mmlightning_vision.pictures import MeanOf, PictureCodec, SampleImages, picture_table
from mmlightning_vision.vqvae import tokenizer_of

Cache = list[dict[str, Tensor]]


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key_value, self.out = (
            nn.Linear(width, width),
            nn.Linear(width, 2 * width),
            nn.Linear(width, width),
        )

    def split(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, H, L, W/H)

    def keys(self, source: Tensor) -> tuple[Tensor, Tensor]:
        key, value = self.key_value(source).chunk(2, -1)
        return self.split(key), self.split(value)

    def forward(
        self, x: Tensor, key: Tensor, value: Tensor, mask: Tensor | None = None, causal: bool = False
    ) -> Tensor:
        found = F.scaled_dot_product_attention(self.split(self.query(x)), key, value, attn_mask=mask, is_causal=causal)
        return self.out(found.transpose(1, 2).flatten(2))  # (B, L, W)


class Block(nn.Module):
    """Causal self-attention over the codes so far, cross-attention to the text, a feed-forward layer (pre-norm)."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(3))
        self.self_attention, self.cross_attention = Attention(width, heads), Attention(width, heads)
        self.feed = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, text: tuple[Tensor, Tensor, Tensor], cache: dict[str, Tensor] | None = None) -> Tensor:
        """``x`` ``(B, L, W)``: every position at once (causal), or with ``cache`` the next one, its keys and values
        added to the cache."""
        h = self.norms[0](x)
        key, value = self.self_attention.keys(h)
        if cache is not None:
            if "key" in cache:
                key, value = torch.cat([cache["key"], key], 2), torch.cat([cache["value"], value], 2)
            cache["key"], cache["value"] = key, value
        x = x + self.drop(self.self_attention(h, key, value, causal=cache is None and x.shape[1] > 1))
        text_key, text_value, text_mask = text
        x = x + self.drop(self.cross_attention(self.norms[1](x), text_key, text_value, mask=text_mask))
        return x + self.drop(self.feed(self.norms[2](x)))


class ImageGenerationHead(Head):
    """Writes a picture for a text: an autoregressive Transformer over an image tokenizer's codes (``image``, a
    ``VQVAEEncoder``, usually frozen after its own run) that cross-attends to a text encoder's tokens (``text``: any,
    the pretrained MiniLM included). DALL-E's recipe, with the text read by cross-attention; the text's mean token is
    also added at every position, a direct signal of what to draw.

    Training: teacher forcing, cross-entropy on each next code; the text is dropped (replaced by a learnt null) for
    ``text_drop`` of the rows, so that the same network also draws without a prompt, which classifier-free guidance
    needs. Validation logs ``bits_per_code`` and a table of pictures drawn for the first ``previews`` prompts of each
    batch (the same rows each epoch: fixed prompts, a fixed seed) beside the tokenizer's rendering of the real one.

    Drawing (rows without a picture: ``predict``, ``serve``, ``mmlightning generate``): one code at a time with a
    key-value cache, at ``temperature``, keeping the ``top_k`` likeliest codes (0: all) and the smallest set whose
    probability reaches ``top_p``; with ``guidance`` g the logits are ``u + g (c - u)`` (c: with the text, u: without;
    1 is plain conditional sampling, 0 unconditional). The prediction is the picture, decoded by the tokenizer,
    written as a PNG.
    """

    modality = "image"
    uses_target = False

    def __init__(
        self,
        dim: int,
        text: str = "text",
        image: str = "image",
        width: int = 256,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
        text_drop: float = 0.1,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        guidance: float = 3.0,
        previews: int = 8,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"ImageGenerationHead: width {width} is not a multiple of heads {heads}")
        if not 0 <= text_drop < 1:
            raise ConfigError(f"ImageGenerationHead: text_drop must be in [0, 1), got {text_drop}")
        self.text, self.source, self.width, self.depth, self.num_heads = text, image, width, layers, heads
        self.dropout, self.text_drop, self.previews = dropout, text_drop, previews
        self.temperature, self.top_k, self.top_p, self.guidance = temperature, top_k, top_p, guidance
        self.blocks: Any = None  # built in set_fitted, once the tokenizer's codebook and grid are known

    def reads(self) -> list[str]:
        return [self.text, self.source]

    def prompts(self) -> list[str]:
        return [self.text]

    def fit(self, values: Sequence[Any]) -> None:
        facts = self.context.facts(self.source)
        if "codebook_size" not in facts:
            tokenizer_of(self, self.source)  # raises, naming what is wrong
        self.context.facts(self.text)  # the text encoder is there
        cells = int(facts["grid"][0]) * int(facts["grid"][1])
        self.set_fitted({"codebook_size": int(facts["codebook_size"]), "cells": cells})

    def set_fitted(self, state: dict[str, Any]) -> None:
        super().set_fitted(state)
        if self.blocks is not None or "codebook_size" not in state:
            return
        size, cells, width = state["codebook_size"], state["cells"], self.width
        self.codebook_size, self.cells = size, cells
        self.text_in = nn.Linear(self.context.encoder_dims[self.text], width)
        self.null = nn.Parameter(torch.randn(width) * 0.02)  # the text, dropped
        self.embed = nn.Embedding(size + 1, width)  # the codes and a start token (``size``)
        self.positions = nn.Parameter(torch.randn(cells, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, self.num_heads, self.dropout) for _ in range(self.depth))
        self.summary = nn.Linear(width, width)
        self.norm, self.out = nn.LayerNorm(width), nn.Linear(width, size)

    def target(self) -> PictureCodec:
        return PictureCodec()

    # --- the text ---------------------------------------------------------------------------------
    def condition(self, text: Features, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The text tokens the codes attend to, ``(B, T, W)`` and ``(B, T)``; rows not kept (and rows without text)
        get the null text instead: one learnt token."""
        memory, mask = self.text_in(text.tokens.to(self.null.dtype)), text.mask
        keep = text.present if keep is None else keep & text.present
        nulled, null_mask = self.nulls(*mask.shape)
        return torch.where(keep[:, None, None], memory, nulled), torch.where(keep[:, None], mask, null_mask)

    def nulls(self, rows: int, length: int) -> tuple[Tensor, Tensor]:
        """The null text for ``rows`` rows, as long as their texts: the learnt token first, padding after it."""
        memory = torch.zeros(rows, length, self.width, device=self.null.device, dtype=self.null.dtype)
        memory[:, 0] = self.null
        return memory, (torch.arange(length, device=self.null.device) == 0).expand(rows, length)

    def gist(self, memory: Tensor, mask: Tensor) -> Tensor:
        """The text's mean token, projected, added at every position: a direct signal of what to draw, beside the
        cross-attention. ``-> (B, 1, W)``."""
        return self.summary(masked_mean(memory, mask))[:, None]

    def _text(self, memory: Tensor, mask: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
        return [(*block.cross_attention.keys(memory), mask[:, None, None]) for block in self.blocks]

    # --- codes ----------------------------------------------------------------------------------------
    def logits(self, codes: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """Teacher forcing: the logits of each code given the ones before it. ``(B, N) -> (B, N, V)``."""
        start = torch.full_like(codes[:, :1], self.codebook_size)
        x = (
            self.embed(torch.cat([start, codes[:, :-1]], 1))
            + self.positions[: codes.shape[1]]
            + self.gist(memory, mask)
        )
        for block, text in zip(self.blocks, self._text(memory, mask)):
            x = block(x, text)
        return self.out(self.norm(x))

    @torch.no_grad()
    def sample(
        self,
        memory: Tensor,
        mask: Tensor,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        **settings: Any,
    ) -> Tensor:
        """Codes for a batch of texts (``condition``'s output), ``(B, N)``; ``settings`` override the head's
        ``temperature``, ``top_k``, ``top_p`` and ``guidance``. ``use_cache=False`` runs every step over the whole
        prefix (slower, the same codes)."""
        temperature, top_k, top_p, guidance = (
            float(settings.get("temperature", self.temperature)),
            int(settings.get("top_k", self.top_k)),
            float(settings.get("top_p", self.top_p)),
            float(settings.get("guidance", self.guidance)),
        )
        b = memory.shape[0]
        if guidance != 1.0:  # the same rows without their text, after them
            nulled, null_mask = self.nulls(*mask.shape)
            memory, mask = torch.cat([memory, nulled]), torch.cat([mask, null_mask])
        text, gist = self._text(memory, mask), self.gist(memory, mask)
        caches: Cache = [{} for _ in self.blocks]
        codes = torch.zeros(memory.shape[0], 0, dtype=torch.long, device=memory.device)
        start = torch.full((memory.shape[0], 1), self.codebook_size, dtype=torch.long, device=memory.device)
        for step in range(self.cells):
            if use_cache:
                previous = codes[:, -1:] if step else start
                x = self.embed(previous) + self.positions[step] + gist
                for block, part, cache in zip(self.blocks, text, caches):
                    x = block(x, part, cache)
                logits = self.out(self.norm(x[:, -1])).float()  # (2B or B, V)
            else:
                wanted = torch.cat([codes, torch.zeros_like(memory[:, :1, 0], dtype=torch.long)], 1)  # one more
                logits = self.logits(wanted, memory, mask)[:, -1].float()
            if guidance != 1.0:
                conditional, unconditional = logits[:b], logits[b:]
                logits = unconditional + guidance * (conditional - unconditional)
            weights = filtered(logits / max(temperature, 1e-6), top_k, top_p).softmax(-1)
            chosen = torch.multinomial(weights, 1, generator=generator)  # (B, 1)
            codes = torch.cat([codes, chosen.repeat(memory.shape[0] // b, 1)], 1)
        return codes[:b]

    # --- the head --------------------------------------------------------------------------------
    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        text, picture = encoded[self.text], encoded.get(self.source)
        codes = None if picture is None else picture.codes
        if picture is not None and codes is None:
            tokenizer_of(self, self.source)  # raises: the encoder gives no codes
        has_picture = picture.present if picture is not None else torch.zeros_like(text.present)
        keep = None
        if self.training:
            keep = torch.rand(text.present.shape, device=text.present.device) >= self.text_drop
        memory, mask = self.condition(text, keep)
        loss, self.last_bits = None, None
        if codes is not None and has_picture.any():
            logits = self.logits(codes[has_picture], memory[has_picture], mask[has_picture]).float()  # (P, N, V)
            losses = F.cross_entropy(logits.flatten(0, 1), codes[has_picture].flatten(), reduction="none")
            loss = losses.mean()
            self.last_bits = losses.detach() / math.log(2)
        tokenizer = tokenizer_of(self, self.source)
        if self.training:
            return HeadOutput(loss=loss, predictions=torch.zeros(len(text.present), 0, device=memory.device))
        drawn = ~has_picture
        drawn[: self.previews] = True  # fixed prompts for the validation table
        generator = torch.Generator(device=memory.device).manual_seed(0) if has_picture.any() else None
        out_codes = torch.zeros(len(text.present), self.cells, dtype=torch.long, device=memory.device)
        if codes is not None:
            out_codes[has_picture] = codes[has_picture]
        if drawn.any():
            out_codes[drawn] = self.sample(memory[drawn], mask[drawn], generator=generator)
        pictures = tokenizer.decode(out_codes).float()  # (B, C, H, W)
        self.last_shown = None
        if codes is not None and has_picture[: self.previews].any():
            rows = has_picture & drawn
            self.last_shown = torch.stack([tokenizer.decode(codes[rows]).float(), pictures[rows]], 1)
        return HeadOutput(loss=loss, predictions=pictures)

    def make_metrics(self) -> dict[str, nn.Module]:
        return {"bits_per_code": MeanOf("bits"), "samples": SampleImages(max(self.previews, 1) * 2)}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Any, Any] | None:
        bits = self.__dict__.get("last_bits")
        if self.training or bits is None:
            return None
        found = {"bits": bits}
        if self.__dict__.get("last_shown") is not None:
            found["shown"] = self.last_shown
        return found, None

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        return {} if name == "samples" else {name: float(value)}

    def metric_tables(self, name: str, value: Tensor) -> dict[str, Any]:
        if name != "samples" or value.numel() == 0:
            return {}
        return {"samples": picture_table(["real (tokenizer)", "drawn"], value)}

    def example_inputs(self, encoded: Mapping[str, Features], targets: Sequence[Any]) -> dict[str, dict[str, Tensor]]:
        return {}


def filtered(logits: Tensor, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Logits with all but the ``top_k`` likeliest set to -inf (0: keep all), then all but the smallest set whose
    probability reaches ``top_p`` (nucleus sampling). ``(B, V) -> (B, V)``."""
    if top_k > 0 and top_k < logits.shape[-1]:
        threshold = logits.topk(top_k, -1).values[:, -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if top_p < 1.0:
        ordered, order = logits.sort(-1, descending=True)
        before = ordered.softmax(-1).cumsum(-1) - ordered.softmax(-1)  # probability of the likelier codes
        dropped = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before >= top_p)
        logits = logits.masked_fill(dropped, float("-inf"))
    return logits
