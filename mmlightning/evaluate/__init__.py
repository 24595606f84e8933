"""Evaluation of trained runs outside a Trainer: scoring with the heads' own metrics, robustness to a missing or
noisy modality, ensembles."""
