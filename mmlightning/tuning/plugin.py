"""The built-in fine-tuning strategies, registered like any plugin's (by import path: nothing heavy loads here)."""

from mmlightning.hookspecs import hookimpl

STRATEGIES = [
    "mmlightning.tuning.freeze:Freeze",
    "mmlightning.tuning.freeze:GradualUnfreeze",
    "mmlightning.tuning.freeze:LayerwiseLRDecay",
    "mmlightning.tuning.lora:LoRA",
    "mmlightning.tuning.prompts:PromptTuning",
    "mmlightning.tuning.distill:Distillation",
    "mmlightning.tuning.adversarial:Adversarial",
    "mmlightning.tuning.initialise:InitFrom",
    "mmlightning.tuning.initialise:Continual",
    "mmlightning.tuning.robust:ModalityDropout",
    "mmlightning.tuning.robust:AuxiliaryHeads",
]


@hookimpl
def register_tunings(register):
    for path in STRATEGIES:
        register(path)
