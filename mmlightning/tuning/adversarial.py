"""`Adversarial`: FGM / PGD training on the embedding outputs of chosen encoders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from mmlightning.tuning.base import Tuning, TuningError, canonical, part_module, select

if TYPE_CHECKING:
    from mmlightning.model import MultimodalModel


class Adversarial(Tuning):
    """Adversarial training (Miyato et al.'s FGM; Madry et al.'s PGD with ``method: pgd``) on embeddings.

    The perturbation is added to the output of ``at`` inside each part (default: the part's first
    ``nn.Embedding``, the word embeddings of a text encoder; for an image encoder name its stem, e.g.
    ``at: model.conv_stem``). FGM moves it by ``epsilon`` along the loss's gradient, normalised over the batch
    (as the usual FGM on the embeddings' gradient); PGD starts from an ``epsilon`` step per sample, takes
    ``steps - 1`` more of ``alpha * epsilon`` and projects each sample back into its ``epsilon`` ball. The loss on the perturbed
    forward pass is added to the training loss with ``weight``. Weights are never modified in place: the extra pass
    changes them only through the loss, like any other term.
    """

    def __init__(
        self,
        parts: Sequence[str] | str,
        epsilon: float = 1.0,
        method: Literal["fgm", "pgd"] = "fgm",
        steps: int = 3,
        alpha: float = 0.3,
        weight: float = 1.0,
        at: str | None = None,
    ) -> None:
        super().__init__(parts)
        if epsilon <= 0 or steps < 1:
            raise TuningError(f"Adversarial: epsilon must be > 0 and steps >= 1, got {epsilon} and {steps}")
        self.epsilon, self.method, self.steps, self.alpha, self.weight, self.at = (
            epsilon,
            method,
            steps,
            alpha,
            weight,
            at,
        )
        self._seen: dict[int, Tensor] = {}  # target module -> its output in the last training forward
        self._delta: dict[int, Tensor] = {}  # target module -> the perturbation to add in the attack pass
        self._hooked: set[int] = set()

    def _targets(self, model: MultimodalModel) -> list[nn.Module]:
        targets = []
        for part in self.parts:
            module = part_module(model, part)
            if module is None:
                select(model, part, self.kind)
                raise TuningError(f"Adversarial: part '{part}' must be a module (an encoder), not a glob")
            if self.at is not None:
                try:
                    targets.append(module.get_submodule(self.at))
                except AttributeError:
                    names = [n for n, _ in module.named_modules() if n][:12]
                    raise TuningError(
                        f"Adversarial: '{canonical(model, part)}' has no submodule '{self.at}'; some it has: {names}"
                    ) from None
            else:
                found = next((m for m in module.modules() if isinstance(m, nn.Embedding)), None)
                if found is None:
                    raise TuningError(
                        f"Adversarial: '{canonical(model, part)}' has no nn.Embedding to perturb; name the layer whose "
                        "output to perturb with at: (e.g. at: model.conv_stem for a timm CNN)"
                    )
                targets.append(found)
        return targets

    def adapt(self, model: MultimodalModel) -> None:
        for target in self._targets(model):
            if id(target) not in self._hooked:
                self._hooked.add(id(target))
                target.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        if not isinstance(output, Tensor):
            return output
        key = id(module)
        if key in self._delta:
            return output + self._delta[key]
        if torch.is_grad_enabled() and output.is_floating_point():
            if not output.requires_grad:
                output.requires_grad_(True)  # a frozen embedding: perturb its output all the same
            self._seen[key] = output
        return output

    def losses(self, model: MultimodalModel, batch: Any, outputs: dict[str, Any], total: Tensor) -> dict[str, Tensor]:
        seen, self._seen = self._seen, {}
        if not seen:
            return {}
        keys, tensors = list(seen), list(seen.values())
        grads = torch.autograd.grad(total, tensors, retain_graph=True, allow_unused=True)
        pgd = self.method == "pgd"  # FGM: one step normalised over the batch; PGD: per sample, projected
        delta = {k: _step(g, t, self.epsilon, per_sample=pgd) for k, g, t in zip(keys, grads, tensors)}
        try:
            if self.method == "pgd":
                for _ in range(self.steps - 1):
                    self._delta = {k: d.detach().requires_grad_(True) for k, d in delta.items()}
                    loss = _loss(model, batch)
                    grads = torch.autograd.grad(loss, list(self._delta.values()), allow_unused=True)
                    delta = {
                        k: _project(d + _step(g, d, self.alpha * self.epsilon), self.epsilon)
                        for (k, d), g in zip(self._delta.items(), grads)
                    }
            self._delta = {k: d.detach() for k, d in delta.items()}
            adversarial = _loss(model, batch)
        finally:
            self._delta, self._seen = {}, {}
        return {"loss": self.weight * adversarial}

    def describe(self, model: MultimodalModel) -> str:
        steps = f", {self.steps} steps of {self.alpha}" if self.method == "pgd" else ""
        return f"Adversarial {self.method.upper()} (epsilon {self.epsilon}{steps}, weight {self.weight}) on {', '.join(self.parts)}"


def _loss(model: MultimodalModel, batch: Any) -> Tensor:
    outputs = model(batch)
    losses = [model.loss_weights[k] * o.loss for k, o in outputs.items() if o.loss is not None]
    return torch.stack(losses).sum()


def _step(grad: Tensor | None, like: Tensor, size: float, per_sample: bool = True) -> Tensor:
    """``size`` along the gradient, normalised per sample, or over the whole batch (zero where the gradient is)."""
    if grad is None:
        return torch.zeros_like(like)
    if not per_sample:
        return size * grad / grad.norm().clamp_min(1e-12)
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (grad.ndim - 1)))
    return size * grad / norm


def _project(delta: Tensor, epsilon: float) -> Tensor:
    norm = delta.flatten(1).norm(dim=1).view(-1, *([1] * (delta.ndim - 1)))
    return delta * torch.clamp(epsilon / norm.clamp_min(1e-12), max=1.0)
