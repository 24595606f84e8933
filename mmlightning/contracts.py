"""The plugin contracts: what an encoder, a fusion and a head implement, and what they may rely on."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from mmlightning.batch import Batch
from mmlightning.features import Features
from mmlightning.processing import Processor, TargetCodec
from mmlightning.readers import Reader
from mmlightning.roles import Role
from mmlightning.strategy import Tuning

__all__ = [
    "Batch",
    "Encoder",
    "Fusion",
    "Head",
    "HeadContext",
    "HeadOutput",
    "Processor",
    "Reader",
    "Role",
    "TargetCodec",
    "Tuning",
]


class Fitted:
    """What encoders and heads share: they may learn something from the training split before training.

    ``fit`` sees the training values of the column(s) the component reads, from the rows that passed the checks
    (never a missing value), and calls ``set_fitted``; ``set_fitted`` builds the layers that depend on it. The
    state must be JSON-able: it is saved in checkpoints so that ``predict`` on new files needs nothing else.
    ``set_fitted`` may run twice in one run (fitted on the data, then restored from a checkpoint): build layers
    again only when their shape changes.
    """

    fitted: dict[str, Any] | None = None

    def fit(self, values: Sequence[Any]) -> None:
        """Learn from the training values. Default: nothing to learn."""
        self.set_fitted({})

    def extend(self, state: dict[str, Any], values: Sequence[Any]) -> None:
        """Start from an earlier run's learnt ``state`` (fine-tuning a pretrained or earlier model) and add what the
        new training ``values`` bring. Default: the earlier state as it is (a vocabulary keeps its ids);
        ``ClassificationHead`` adds the new labels after the old ones, so old label ids keep their meaning."""
        self.set_fitted(state)

    def set_fitted(self, state: dict[str, Any]) -> None:
        """Build whatever depends on the learnt state. Subclasses call ``super().set_fitted(state)``."""
        self.fitted = state

    @property
    def is_fitted(self) -> bool:
        return self.fitted is not None


class Encoder(Fitted, nn.Module):
    """One modality: raw values -> :class:`Features`.

    Implement: ``__init__`` (set ``self.dim``, the width of the tokens), ``processor()`` and ``forward``.
    Optionally ``fit``/``set_fitted`` (see :class:`Fitted`), ``facts`` and ``example_values`` for the kit.
    ``processor()`` is called before fitting too, to check the training rows: then it need only ``check``.
    Rely on: ``inputs`` holding what your processor's ``collate`` made, plus ``present`` ``(B,)``.
    """

    modality: ClassVar[str] = "any"
    dim: int

    def processor(self) -> Processor:
        raise NotImplementedError

    def forward(self, inputs: Mapping[str, Tensor]) -> Features:
        raise NotImplementedError

    def default_columns(self) -> str | list[str] | None:
        """The column(s) read when ``--data.columns`` does not say: None (the default), the column named like the
        key; or names, or a glob (``"*"``: every column the id, a target or another encoder does not take). Once
        fitted, an encoder that learnt its columns gives them by name, so new files are read the same way."""
        return None

    def fit_targets(self, values: Sequence[Any], targets: Mapping[str, Sequence[Any]]) -> None:
        """``fit`` with the targets of the same training rows (head key -> one target per value, None where a row
        has none), for an encoder whose layout depends on the target (tree bins). Default: ``fit(values)``."""
        self.fit(values)

    def stem(self) -> Encoder | None:
        """An inner encoder this one builds on (a video's frame encoder), for ``forward`` = ``over_stem(stem(inputs),
        inputs)``: with the stem frozen alone, its features are cached and ``over_stem`` still trains. Default: none."""
        return None

    def over_stem(self, features: Features, inputs: Mapping[str, Tensor]) -> Features:
        """The layers over the stem's ``features`` (where ``stem`` gives one)."""
        raise NotImplementedError

    def facts(self) -> dict[str, Any]:
        """What heads may know of the fitted encoder (``HeadContext.facts``): ``vocab_size``, ``pad_id``, ..."""
        return {}

    def example_values(self, root: Path, count: int) -> list[Any]:
        """Raw values for tests and docs (writing any files they need under ``root``)."""
        raise NotImplementedError


class Fusion(nn.Module):
    """Many modalities' :class:`Features` -> one :class:`Features`.

    Implement ``__init__(self, dims, ...)`` where ``dims`` maps encoder key -> width (set ``self.dim``),
    and ``forward``. The result must not depend on the key order of ``features`` (iterate ``sorted``),
    and a sample whose ``present`` is False for a modality must get nothing from it and no NaN.
    """

    modality: ClassVar[str] = "any"
    has_attention: ClassVar[bool] = False  # True where ``attention`` is implemented (dashboards draw it)
    keeps_tokens: ClassVar[bool] = False  # True where the fused Features keep each modality's tokens (``spans``)
    dim: int

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.dims = dict(sorted(dims.items()))

    def forward(self, features: Mapping[str, Features]) -> Features:
        raise NotImplementedError

    def attention(self) -> dict[str, Tensor]:
        """After a forward inside :func:`mmlightning.layers.recording_attention`: per modality whose tokens the
        fusion attended to, ``(B, N_key)`` how much of the attention each of its tokens got (each row sums to 1 over
        the modality's real tokens, or is all zero). Dashboards draw it over the input. ``{}`` (the default): this
        fusion has no attention to show."""
        return {}


@dataclass
class Chart:
    """A table a dashboard draws as a chart (W&B: its confusion-matrix or bar chart), from ``Head.metric_tables``.

    ``kind`` ``"confusion"``: columns (true label, predicted label, count), a row per cell of the matrix;
    ``"bar"``: columns (label, value), a bar per row.
    """

    kind: Literal["confusion", "bar"]
    columns: list[str]
    rows: list[list[Any]]
    title: str = ""


@dataclass
class HeadOutput:
    """What a head returns: a scalar ``loss`` (None when the batch has no target) and ``predictions``."""

    loss: Tensor | None
    predictions: Tensor
    logits: Tensor | None = None


@dataclass
class HeadContext:
    """What a head may rely on about the model it is part of, given to ``Head.bind`` when the model is built.

    Attributes:
        name: the head's key (``batch.targets[name]`` holds its targets).
        encoder_dims: encoder key -> width, for heads that read ``encoded``.
        fuse: the model's fusion, to fuse other combinations of ``encoded`` (image-text matching scores
            mismatched pairs through it). Its weights stay the model's.
        encoders: the encoders, for their public ``facts()`` once fitted (use :meth:`facts`).
    """

    name: str
    encoder_dims: dict[str, int]
    fuse: Callable[[Mapping[str, Features]], Features] | None = None
    encoders: Mapping[str, Encoder] = field(default_factory=dict)

    def facts(self, key: str) -> dict[str, Any]:
        """The fitted encoder ``key``'s facts; ``ValueError`` naming the encoders there are if it is absent."""
        if key not in self.encoders:
            raise ValueError(
                f"head '{self.name}' reads encoder '{key}', but the model's encoders are {sorted(self.encoders)}; "
                "set the head's modality=KEY"
            )
        return self.encoders[key].facts()


class Head(Fitted, nn.Module):
    """One task on the fused features: a loss, predictions and metrics.

    Implement ``__init__(self, dim, ...)`` and ``forward``; for a task with a target column also ``fit``,
    ``target`` (its :class:`TargetCodec`: encode, collate and decode) and ``make_metrics``.
    Rely on: ``self.context`` (a :class:`HeadContext`: ``self.name``, ``self.encoder_dims``, ``self.fuse``
    and the encoders' facts), set by ``bind`` right after ``__init__``; build layers that need it in
    ``set_fitted`` (it runs after the encoders are fitted and before the optimizer exists).
    """

    modality: ClassVar[str] = "any"
    uses_target: bool = True
    supports_combine: ClassVar[bool] = False  # True where ``combine`` is implemented (ensembles)
    needs_tokens: ClassVar[bool] = False  # True where it reads ``source``'s tokens from the fused features (a tagger)

    def bind(self, context: HeadContext) -> None:
        """Called by the model right after ``__init__`` (and by the testing kit)."""
        self.context = context

    @property
    def name(self) -> str:
        context = self.__dict__.get("context")
        return context.name if context is not None else "head"

    @property
    def encoder_dims(self) -> dict[str, int]:
        context = self.__dict__.get("context")
        return dict(context.encoder_dims) if context is not None else {}

    def fuse(self, features: Mapping[str, Features]) -> Features:
        """Fuse ``features`` with the model's fusion."""
        context = self.__dict__.get("context")
        if context is None or context.fuse is None:
            raise RuntimeError(f"head '{self.name}' has no fusion to call: it was not bound to a model (Head.bind)")
        fused: Features = context.fuse(features)
        return fused

    def reads(self) -> list[str]:
        """The encoder keys this head reads from ``encoded`` or ``batch.inputs`` (the testing kit makes them)."""
        source = getattr(self, "source", None)
        return [source] if isinstance(source, str) else []

    def target(self) -> TargetCodec:
        """The data side: a fresh codec from the fitted state (before fitting: one that can ``check``)."""
        return TargetCodec()

    def forward(self, fused: Features, encoded: Mapping[str, Features], batch: Batch) -> HeadOutput:
        raise NotImplementedError

    def prepare_batch(self, batch: Batch, stage: str) -> Batch:
        """Change the batch before encoding (a masking objective corrupts its input here). Default: none."""
        return batch

    def prompts(self) -> list[str]:
        """For a head that generates (a picture for a text): the encoder keys its prompt is read by;
        ``mmlightning generate`` puts each prompt in their columns. Default: none (the head does not generate)."""
        return []

    def embeds(self) -> list[str]:
        """The encoder keys this head embeds in one shared space (two for a contrastive head, as CLIP's towers);
        zero-shot classification compares them. Default: none."""
        return []

    def embeddings(self, encoded: Mapping[str, Features]) -> dict[str, Tensor]:
        """Each of ``embeds()``'s keys present in ``encoded`` -> its L2-normalised embeddings ``(B, E)``."""
        raise NotImplementedError(f"{type(self).__name__} embeds no modality (its embeds() is empty)")

    def similarity_scale(self) -> float:
        """The factor that turns the cosine similarity of two embeddings into a logit (CLIP's learnt inverse
        temperature); 1 by default."""
        return 1.0

    def example_inputs(self, encoded: Mapping[str, Features], targets: Sequence[Any]) -> dict[str, dict[str, Tensor]]:
        """For the testing kit: the ``batch.inputs`` entries this head reads (default: none)."""
        return {}

    def combine(self, outputs: Sequence[HeadOutput]) -> HeadOutput:
        """Several trained models' outputs for the same batch -> the ensemble's one (``mmlightning ensemble``).
        Not every task can be averaged, so the default refuses; ``ClassificationHead`` averages probabilities.
        A head that implements it sets ``supports_combine = True``."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to combine several models' outputs")

    def make_metrics(self) -> dict[str, nn.Module]:
        """Fresh torchmetrics for one stage; called once per stage after the head is fitted."""
        return {}

    def metric_inputs(self, output: HeadOutput, batch: Batch) -> tuple[Any, Any] | None:
        """The (preds, target) pair the metrics are updated with; None to skip this batch."""
        return output.predictions, batch.targets[self.name]

    def metric_values(self, name: str, value: Tensor) -> dict[str, float]:
        """Flatten one computed metric for logging; a per-class vector gets a key per class."""
        if value.numel() == 1:
            return {name: float(value)}
        return {f"{name}/{i}": float(v) for i, v in enumerate(value.flatten())}

    def metric_tables(self, name: str, value: Tensor) -> dict[str, tuple[list[str], list[list[Any]]] | Chart]:
        """Tables to log once per epoch beside the scalars, as ``{table: (columns, rows)}`` (W&B shows a table) or
        ``{table: Chart(...)}`` (W&B draws a chart), logged as ``STAGE/HEAD/TABLE``. None by default;
        ``ClassificationHead`` gives its confusion matrix (a table and a chart) and per-class scores (a bar chart)."""
        return {}

    def example_targets(self, count: int) -> list[Any]:
        """Raw target values for tests and docs."""
        raise NotImplementedError
