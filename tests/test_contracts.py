"""Every registered component through the same checks (shapes, backward, determinism, missing modalities)."""

from __future__ import annotations

import pytest
import torch

from mmlightning.plugins import get_registry
from mmlightning.testing import ContractError, check_encoder, check_fusion, check_head

REGISTRY = get_registry()
SMALL = {
    "TextEncoder": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 80},
    "TimmEncoder": {"model_name": "test_vit", "image_size": 32},
}


@pytest.mark.parametrize("component", REGISTRY.components("encoder"), ids=lambda c: c.name)
def test_encoder_contract(component, tmp_path):
    encoder = component.cls(**SMALL.get(component.name, {}))
    check_encoder(encoder, encoder.example_values(tmp_path, 3), tmp_path)


@pytest.mark.parametrize("component", REGISTRY.components("fusion"), ids=lambda c: c.name)
@pytest.mark.parametrize("dims", [{"text": 12, "image": 20}, {"a": 8, "b": 16, "c": 24}], ids=["two", "three"])
def test_fusion_contract(component, dims):
    check_fusion(
        component.cls, dims, dim=16, heads=2
    ) if "heads" in component.cls.__init__.__code__.co_varnames else check_fusion(component.cls, dims, dim=16)


# heads that read an image tokenizer's codes, which the kit's random features lack: their own tests run them on a
# real tokenizer (plugins/mmlightning-vision/tests/test_generation.py)
ON_TOKENIZERS = {"ImageGenerationHead", "ReconstructionHead"}


@pytest.mark.parametrize("component", REGISTRY.components("head"), ids=lambda c: c.name)
def test_head_contract(component):
    if component.name in ON_TOKENIZERS:
        pytest.skip("reads a tokenizer's codes: tested on a real VQVAEEncoder in mmlightning-vision")
    text = REGISTRY.resolve("encoder", "TextEncoder").cls(**SMALL["TextEncoder"])
    text.fit(["a fitted text encoder for heads that read its tokenizer", "a second text"])
    check_head(component.cls, dim=16, encoders={"text": text})


def test_the_kit_catches_a_broken_fusion():
    from mmlightning import Features, Fusion

    class LeakyFusion(Fusion):
        def __init__(self, dims, dim=8):
            super().__init__(dims)
            self.dim = dim
            self.proj = torch.nn.Linear(sum(dims.values()), dim)

        def forward(self, features):
            pooled = torch.cat([f.tokens.mean(1) for f in features.values()], -1)  # ignores masks and key order
            return Features.from_pooled(self.proj(pooled))

    with pytest.raises(ContractError):
        check_fusion(LeakyFusion, {"a": 4, "b": 6})
