"""`MultimodalModel`: encoders -> fusion -> heads, as a plain ``nn.Module`` with the one forward.

Everything that changes what a prediction is belongs here: the encoders, the fusion, the heads, modality dropout
and the fine-tuning strategies' parts (LoRA adapters, prompts, per-modality fallback heads). Training
(:class:`mmlightning.module.MultimodalModule`), export, serving, ensembles and evaluation all run this forward,
so none of them can answer differently from another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch
from torch import Tensor, nn

from mmlightning import parts as runner
from mmlightning.bundle import ProcessorBundle
from mmlightning.cache import FeatureCache
from mmlightning.contracts import Batch, Encoder, Fusion, Head, HeadContext, HeadOutput
from mmlightning.errors import ConfigError
from mmlightning.features import Features
from mmlightning.processing import CACHED, sample_key
from mmlightning.strategy import Tuning

log = logging.getLogger(__name__)
FusionFactory = Callable[[dict[str, int]], Fusion]
HeadFactory = Callable[[int], Head]
M = TypeVar("M", bound=nn.Module)
PARTS = ("encoders.", "fusion.", "heads.", "tuning.")  # the model's top-level parts, as state-dict prefixes


class Modules(nn.ModuleDict, Generic[M]):
    """A ``ModuleDict`` whose values type checkers know (encoders, heads)."""

    if TYPE_CHECKING:

        def __getitem__(self, key: str) -> M: ...
        def items(self) -> Iterable[tuple[str, M]]: ...  # type: ignore[override]
        def values(self) -> Iterable[M]: ...  # type: ignore[override]


class MultimodalModel(nn.Module):
    """One encoder per input field, one fusion, one or more task heads, and the parts that change the forward.

    ``model(batch)`` gives ``{head: HeadOutput}``; ``model.losses(batch, outputs, total)`` the parts' extra
    training losses. The arguments are those of :class:`mmlightning.module.MultimodalModule` that shape the
    network; see its docstring.
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        fusion: FusionFactory,
        heads: Mapping[str, HeadFactory],
        loss_weights: Mapping[str, float] | None = None,
        tuning: Sequence[Tuning] | None = None,
    ) -> None:
        super().__init__()
        if not encoders or not heads:
            raise ValueError(
                "A model needs at least one encoder and one head (--model.encoders.KEY=..., --model.heads.KEY=...)"
            )
        self.encoders: Modules[Encoder] = Modules(dict(sorted(encoders.items())))
        self.fusion = fusion({key: enc.dim for key, enc in self.encoders.items()})
        self.heads: Modules[Head] = Modules({key: make(self.fusion.dim) for key, make in sorted(heads.items())})
        self.fusion_factory, self.head_factories = fusion, dict(heads)  # AuxiliaryHeads builds its paths with them
        dims = {k: enc.dim for k, enc in self.encoders.items()}
        for key, head in self.heads.items():  # the context holds references, not submodules: weights stay the model's
            head.bind(HeadContext(name=key, encoder_dims=dims, fuse=self.fusion, encoders=dict(self.encoders.items())))
        self._check_tokens()
        unknown = set(loss_weights or {}) - set(self.heads)
        if unknown:
            raise ValueError(
                f"loss_weights names {sorted(unknown)}, which are not heads; heads are {sorted(self.heads)}"
            )
        self.loss_weights = {key: float((loss_weights or {}).get(key, 1.0)) for key in self.heads}
        self.tuning = nn.ModuleList(runner.check_strategies(tuning))
        self.frozen: list[str] = []
        self.frozen_stems: list[str] = []  # encoders whose stem alone is frozen (its features may be cached)
        self.cache: FeatureCache | None = None  # set by the training module (cache_frozen)
        self.earlier: dict[str, Any] = {}  # an earlier run's learnt state, set by InitFrom / Continual
        self._random_inputs: dict[str, bool] = {}
        self.tune()

    def _check_tokens(self) -> None:
        """A head that reads one modality's fused tokens needs a fusion that keeps them: refused here, before data
        or a Trainer, rather than at the first batch."""
        if self.fusion.keeps_tokens:
            return
        for key, head in self.heads.items():
            if head.needs_tokens:
                from mmlightning.plugins import get_registry

                fusions = get_registry().components("fusion")
                keeping = sorted(c.name for c in fusions if getattr(c.cls, "keeps_tokens", False))
                raise ConfigError(
                    f"head '{key}' ({type(head).__name__}) reads the '{getattr(head, 'source', '?')}' tokens after "
                    f"fusion, but {type(self.fusion).__name__} does not keep tokens; use a fusion that does: "
                    f"{', '.join(keeping) or 'none is installed'}"
                )

    @property
    def device(self) -> torch.device:
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    # --- what the data knows ------------------------------------------------------------------
    def components(self) -> dict[str, Encoder | Head]:
        return {
            **{f"encoders.{k}": v for k, v in self.encoders.items()},
            **{f"heads.{k}": v for k, v in self.heads.items()},
        }

    @property
    def is_fitted(self) -> bool:
        return all(c.is_fitted for c in self.components().values())

    def fit_data(
        self, values: Mapping[str, Sequence[Any]], targets: Mapping[str, Mapping[str, Sequence[Any]]] | None = None
    ) -> None:
        """Learn vocabularies, label sets, ... from training values (``key -> values``, as
        ``MultimodalDataModule.training_values`` gives them): the encoders first, then the heads. ``targets``
        (encoder key -> head key -> the targets of the rows behind that encoder's values, as
        ``training_targets`` gives them) reaches ``Encoder.fit_targets``. A component given an earlier run's
        learnt state (``self.earlier``, set by ``InitFrom``/``Continual``) extends it."""
        for name, component in self.components().items():
            if not component.is_fitted:
                with _seeded(name):  # the weights it builds depend on the run's seed and its name alone
                    self._fit_one(name, component, values, targets)
        self.tune()

    def _fit_one(self, name: str, component: Any, values: Mapping[str, Any], targets: Mapping[str, Any] | None) -> None:
        """One component's data side, from its values (an encoder; a head that uses targets) or none."""
        key = name.split(".", 1)[1]
        uses_data = isinstance(component, Encoder) or component.uses_target
        data = list(values.get(key, [])) if uses_data else []
        if self.earlier.get(name) is not None:
            component.extend(self.earlier[name], data)
            log.info("%s starts from the earlier run's learnt state", name)
        elif isinstance(component, Encoder) and targets is not None:
            component.fit_targets(data, targets.get(key, {}))
        else:
            component.fit(data)
            log.info("fitted %s from the training data", name)

    def fitted_state(self) -> dict[str, Any]:
        """Each component's learnt state (JSON-able), as checkpoints keep it."""
        return {k: c.fitted for k, c in self.components().items()}

    def load_fitted(self, fitted: Mapping[str, Any]) -> None:
        """Restore the learnt state ``fitted_state`` gave, then apply the strategies (adapters and prompts exist
        before weights load into them)."""
        for name, component in self.components().items():
            if fitted.get(name) is not None:
                component.set_fitted(fitted[name])
        if not self.is_fitted:
            missing = ", ".join(k for k, c in self.components().items() if not c.is_fitted)
            raise RuntimeError(
                f"The checkpoint has no learnt state for {missing}: it was not saved by `mmlightning fit` with this "
                "model's config. Pass the config the run saved beside its checkpoints (--config RUN/config.yaml)."
            )
        self.tune()

    def bundle(self, columns: Mapping[str, Any] | None = None, id_column: str = "id") -> ProcessorBundle:
        """The data side: each encoder's processor and each head's target codec (see :class:`ProcessorBundle`).
        Before fitting, it can only check rows."""
        processors = {key: enc.processor() for key, enc in self.encoders.items()}
        codecs = {key: head.target() for key, head in self.heads.items()}
        targets = [key for key, head in self.heads.items() if head.uses_target]
        defaults = {key: enc.default_columns() for key, enc in self.encoders.items()}
        columns = {**{k: v for k, v in defaults.items() if v is not None}, **(columns or {})}
        drawn = {
            key for head in self.heads.values() if head.prompts() for key in head.reads() if key not in head.prompts()
        }
        return ProcessorBundle(processors, codecs, columns, targets, id_column, fitted=self.is_fitted, drawn=drawn)

    def tune(self) -> None:
        """Apply the fine-tuning strategies once every component is fitted (layers built from the data exist);
        again after a checkpoint's learnt state is restored (each strategy's ``adapt`` is idempotent)."""
        if self.is_fitted:
            runner.apply_all(self)
            self.frozen = runner.frozen_encoders(self)
            self.frozen_stems = runner.frozen_stems(self)
            self.train(self.training)

    # --- the forward pass -------------------------------------------------------------------------
    def forward(self, batch: Batch) -> dict[str, HeadOutput]:
        """The one forward: encoders, the strategies' feature transforms (modality dropout, in training), the
        fusion, the heads, and the strategies' output transforms (fallback heads for rows with one modality)."""
        given = encoded = self.encode(batch)
        for strategy in runner.strategies(self):
            encoded = strategy.transform_features(self, encoded)
        fused = self.fusion(encoded)  # Features (B, N, D)
        outputs = {key: head(fused, encoded, batch) for key, head in self.heads.items()}
        for strategy in runner.strategies(self):
            outputs = strategy.transform_outputs(self, batch, given, outputs)
        return outputs

    def encode(self, batch: Batch, keys: Sequence[str] | None = None) -> dict[str, Features]:
        """Each encoder's features for a batch (from the cache where an encoder is frozen); only ``keys``' when
        given (zero-shot embeds one tower at a time)."""
        wanted = self.encoders if keys is None else keys
        return {key: self._encode(key, self.encoders[key], batch) for key in wanted}

    def _encode(self, key: str, encoder: Encoder, batch: Batch) -> Features:
        if key in self.frozen and encoder.training:
            encoder.eval()  # Lightning restores each submodule's own mode, so the model's train() is not enough
        cached = key in self.frozen or key in self.frozen_stems
        if self.cache is None or not cached or not batch.raw or self._augments(key):
            if CACHED in batch.inputs[key]:
                raise RuntimeError(f"the loader skipped encoder {key!r}'s inputs, but its features are not cached now")
            features: Features = encoder(batch.inputs[key])
            return features
        columns = list(batch.raw)
        samples = [sample_key([batch.raw[c][i] for c in columns], batch.root) for i in range(len(batch))]
        if key in self.frozen:
            return self.cache.encode(key, samples, batch.inputs[key], encoder)
        stem = encoder.stem()
        if stem is None:  # frozen_stems holds only encoders with a stem: one that stopped giving it is a plugin bug
            raise RuntimeError(f"encoder {key!r} ({type(encoder).__name__}) gave a stem, then none")
        if stem.training:
            stem.eval()  # frozen: no dropout, batch-norm statistics kept
        return encoder.over_stem(self.cache.encode(f"{key}.stem", samples, batch.inputs[key], stem), batch.inputs[key])

    def _augments(self, key: str) -> bool:
        """Whether the key's processor draws random augmentation in training (its features then change)."""
        if key not in self._random_inputs:
            self._random_inputs[key] = bool(getattr(self.encoders[key].processor(), "random_in_training", True))
        return self._random_inputs[key]

    def total_loss(self, outputs: Mapping[str, HeadOutput]) -> Tensor | None:
        """The heads' losses summed with ``loss_weights`` (None when no head gave one)."""
        losses = [self.loss_weights[key] * out.loss for key, out in outputs.items() if out.loss is not None]
        return sum(losses[1:], losses[0]) if losses else None

    def losses(self, batch: Batch, outputs: dict[str, HeadOutput], total: Tensor) -> dict[str, Tensor]:
        """The parts' extra training losses (auxiliary heads, distillation, adversarial), ``{name: scalar}``."""
        return runner.extra_losses(self, batch, outputs, total) if len(self.tuning) else {}

    def check_cache(self, precision: str = "32-true") -> None:
        """Before an epoch: cached features of changed weights, or of another precision, are not reused."""
        if self.cache is not None:
            for key in self.frozen:
                self.cache.check(key, self.encoders[key], precision)
            for key in self.frozen_stems:
                self.cache.check(f"{key}.stem", self.encoders[key].stem() or self.encoders[key], precision)

    def train(self, mode: bool = True) -> MultimodalModel:
        super().train(mode)
        if mode and "tuning" in self._modules:
            for module in runner.eval_modules(self):
                module.eval()  # frozen: no dropout, no batch-norm updates
        return self


def upgrade_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A training module's state dict saved before the model was its own module (keys ``encoders.…``, not
    ``model.encoders.…``) in today's layout; today's pass unchanged."""
    return {f"model.{k}" if k.startswith(PARTS) else k: v for k, v in state.items()}


def model_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The model's own entries of a training module's state dict (old or new layout), named as in the model."""
    prefix = len("model.")
    return {k[prefix:]: v for k, v in upgrade_state(state).items() if k.startswith("model.")}


@contextlib.contextmanager
def _seeded(name: str) -> Iterator[None]:
    """The global random state forked and seeded from the run's seed (``seed_everything``; else this process's
    initial seed) and ``name``: weights built from the data are the same whatever drew random numbers before (DDP
    re-seeds each process as it starts, so a one-process run and a multi-node one begin from the same model)."""
    seed = os.environ.get("PL_GLOBAL_SEED") or str(torch.initial_seed())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{seed}:{name}".encode()))
        yield
