"""The entry point: registers the image encoders (timm, the VQ-VAE tokenizer) and heads (masked patches, reconstruction,
text-to-image generation) by import path (torch loads only when used)."""

from mmlightning import hookimpl


@hookimpl
def register_encoders(register):
    register("mmlightning_vision.encoder:TimmEncoder")
    register("mmlightning_vision.vqvae:VQVAEEncoder")


@hookimpl
def register_heads(register):
    register("mmlightning_vision.masked:MaskedPatchHead")
    register("mmlightning_vision.vqvae:ReconstructionHead")
    register("mmlightning_vision.generation:ImageGenerationHead")


@hookimpl
def register_roles(register):
    register("mmlightning_vision.roles:ImageRole")
