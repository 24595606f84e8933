"""Manifests, row validation and the generic multimodal datamodule."""
