"""The data side of components: a :class:`Processor` per encoder, a :class:`TargetCodec` per head.

Both are plain picklable objects (no weights) whose fitted state is JSON (``state()``), so the data side of a
model can be saved, loaded and used with no ``nn.Module`` at all (see :class:`~mmlightning.bundle.ProcessorBundle`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from mmlightning.media import MediaRoot as MediaRoot  # re-exported: where it was first
from mmlightning.media import StoredFile as StoredFile
from mmlightning.media import StoredRoot as StoredRoot

T = TypeVar("T", bound="Stateful")

# Input keys several plugins share; a processor that gives such a thing uses these names, and a head that
# corrupts inputs before encoding (a masking objective) may rely on them and on nothing else.
SHARED_INPUT_KEYS = {
    "ids": "(B, L) long token ids",
    "mask": "(B, L) bool, True for real tokens",
    "word_ids": "(B, L) long, the word each token came from (-1 for special tokens and padding)",
    "pixels": "(B, 3, H, W) float, normalised images",
}


CACHED = "cached"  # an input the loader did not process: its encoder's features all come from the feature cache


def sample_key(values: Sequence[Any], root: Any) -> str:
    """What the feature cache knows a sample by: the raw values of the columns the model reads, and the media
    folder (the same value in another folder is another file)."""
    return json.dumps(list(values), default=str) + str(root)


def as_number(value: Any, column: str | None = None) -> float | None:
    """A manifest cell as a number (CSV cells arrive as strings); None for a missing cell. A cell that is not a
    number gives None, or with ``column`` a ``ValueError`` naming the column (the row is then a bad row)."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        if column is None:
            return None
        raise ValueError(f"{column}: expected a number, got {value!r}") from None


class Stateful:
    """JSON state: ``state()`` gives the keyword arguments that rebuild the object with ``from_state``."""

    def state(self) -> dict[str, Any]:
        """JSON-able keyword arguments of ``__init__`` that rebuild this object. Default: the attributes named
        like ``__init__``'s arguments (scikit-learn's ``get_params`` convention); override when one is not kept
        under its own name or is not JSON (a tokenizer object: give its JSON text)."""
        names = [
            n
            for n, p in inspect.signature(type(self).__init__).parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        missing = [n for n in names if not hasattr(self, n)]
        if missing:
            raise TypeError(
                f"{type(self).__name__}.state(): no attribute {missing[0]!r} for the __init__ argument of that name; "
                "keep it under that name or override state()"
            )
        return {n: getattr(self, n) for n in names}

    @classmethod
    def from_state(cls: type[T], state: Mapping[str, Any]) -> T:
        return cls(**state)


class Processor(Stateful):
    """Turns one raw field value into tensors, and a list of those into a padded batch.

    Implement ``__call__``, ``blank`` and ``state``; ``collate`` when items are not all the same shape (the
    default stacks each key); ``check`` when a full decode is too slow to run on every row before training;
    ``preview`` to show a value on a dashboard. A processor must pickle (DataLoader workers get a copy).

    An encoder's processor is made before the encoder is fitted too (``Encoder.processor()``), to check the
    training rows; such a processor need only ``check``. An encoder reading several columns gets a mapping
    ``{column: value}`` per row (a value may be None); name the column in an error (``"age: not a number"``).
    Set ``random_in_training`` when ``__call__(..., train=True)`` draws random augmentation: a frozen encoder's
    features are then computed every time rather than cached. Set ``reads_files = False`` when values are the
    data itself (text, numbers), not paths of files: ``serve`` then refuses a file uploaded for it. Raise
    ``mmlightning.errors.TooLargeError`` for a value over a size limit (``serve`` answers 413).

    Read media through :meth:`resolve`, and hand what it gives to a reader that takes a path or a binary file
    object (PIL, PyAV, ``wave``; ``x.open("rb")`` for your own reading): from shards (``mmlightning optimize``) it
    gives a :class:`StoredFile` held in memory rather than a path on disk.
    """

    random_in_training: bool = False
    reads_files: bool = True

    def __call__(self, value: Any, root: Path, train: bool) -> dict[str, Tensor] | None:
        """One raw value (a text, a path relative to ``root``, ...) -> tensors. Raise ``ValueError`` if bad; return
        None when a good value holds nothing for this modality (a video with no sound track): the row is then
        missing this modality, as if the value were."""
        raise NotImplementedError

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Pad and stack items into a batch; include a bool ``mask`` for variable-length sequences."""
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

    def blank(self) -> dict[str, Tensor]:
        """A placeholder item for a missing value (its output is masked out)."""
        raise NotImplementedError

    def check(self, value: Any, root: Path) -> None:
        """Raise ``ValueError`` saying what is wrong with a raw value. Default: process it fully."""
        self(value, root, train=False)

    def decoded(self, value: Any, root: Path) -> dict[str, Tensor] | None:
        """What ``mmlightning optimize --decoded`` stores for a value so that training need not redo it each epoch:
        the part of ``__call__`` that depends only on the value and this processor's settings (a decoded picture, a
        text's token ids), as tensors. ``from_decoded`` finishes the work (augmentation, normalisation). None (the
        default), or a processor not ready yet (a tokenizer still to learn): nothing is stored, files are read."""
        return None

    def from_decoded(self, decoded: dict[str, Tensor], train: bool) -> dict[str, Tensor] | None:
        """What ``__call__(value, root, train)`` gives, from ``decoded(value, root)``: exactly the same tensors."""
        raise NotImplementedError(f"{type(self).__name__} stores no decoded form")

    def fingerprint(self) -> str:
        """The settings decoded forms depend on: a digest of the class and ``state()``. Shards keep it beside the
        decoded forms, and a run whose processor gives another reads the stored files instead."""
        settings = json.dumps([type(self).__qualname__, self.state()], sort_keys=True, default=str)
        return hashlib.sha1(settings.encode("utf-8")).hexdigest()[:16]

    def truncates(self, value: Any) -> bool:
        """Whether ``value`` is cut to fit the encoder (a text longer than its ``max_length`` tokens). Default: no."""
        return False

    def corruptions(self) -> tuple[str, ...]:
        """The corruptions this modality offers ``mmlightning robustness`` (``("noise", "blur")`` for images). Default:
        none."""
        return ()

    def corrupt(
        self, value: Any, root: Path, kind: str, severity: float, generator: torch.Generator
    ) -> dict[str, Tensor] | None:
        """One sample as ``self(value, root, train=False)`` makes it, corrupted by ``kind`` (one of
        :meth:`corruptions`) at ``severity`` in [0, 1]: 0 gives exactly the clean sample, 1 the worst this modality
        offers. Randomness comes from ``generator`` only, so a robustness table is the same every time."""
        raise NotImplementedError(f"{type(self).__name__} offers no corruption '{kind}'")

    def preview(self, value: Any, root: Path) -> Any:
        """What a dashboard shows for a value: a string, a PIL image, a list of PIL images (a clip's frames: shown
        as an animation), a (waveform, rate) pair, or a ``{field: value}`` dict (a record: shown as a small table)."""
        return str(value)

    def preview_weights(self, value: Any, root: Path, weights: Any) -> Any:
        """The value with ``weights`` drawn over it, for a dashboard (a fusion's attention over an image's grid):
        ``weights`` is an ``(H, W)`` tensor laid out as the encoder's ``Features.grid``. None (the default): this
        modality cannot show them."""
        return None

    @staticmethod
    def resolve(value: Any, root: Path, what: str = "media") -> Path:  # or a StoredFile, read from shards
        """A media path from a manifest, relative to ``root``; ``ValueError`` if it is not a path, is absent, or
        leads outside ``root`` (an absolute path, ``..``) and outside the folders the user allowed
        (``--data.allow_roots``, carried by a :class:`MediaRoot`): a manifest never reads a file the user did not
        point at. A link is followed only where it leads inside those folders: a link to a file elsewhere is refused
        like the path itself would be (allow its folder with ``--data.allow_roots``)."""
        if not isinstance(value, str) or not value.strip():
            article = "an" if what[:1] in "aeiou" else "a"
            raise ValueError(f"expected {article} {what} path, got {value!r}")
        if isinstance(root, StoredRoot):
            if value not in root.files:
                raise ValueError(
                    f"{what} file {value} is not in the shards at {root}: write them again with `mmlightning optimize`"
                )
            return StoredFile(value, root.files[value])  # type: ignore[return-value]  # read like a path
        path = Path(os.path.normpath(Path(os.path.abspath(root)) / value))  # an absolute value stays absolute
        bases = [Path(os.path.abspath(root)), *map(Path, getattr(root, "allowed", ()))]
        if not any(path.is_relative_to(base) for base in bases):
            raise ValueError(
                f"{what} path {value} is outside the data folder {root}; keep media under the manifest's folder or "
                "--data.data_root, or allow another folder with --data.allow_roots=[DIR]"
            )
        if not path.is_file():
            raise ValueError(f"{what} file not found: {value} (looked for {path})")
        real = path.resolve()
        if real != path and not any(real.is_relative_to(base.resolve()) for base in bases):
            raise ValueError(
                f"{what} path {value} is a link to {real}, outside the data folder {root}; allow that folder with "
                "--data.allow_roots=[DIR] to read it"
            )
        return path

    def batch(self, items: Sequence[dict[str, Tensor] | None]) -> dict[str, Tensor]:
        """Collate items where ``None`` marks a missing value; adds ``present`` ``(B,)``."""
        present = torch.tensor([item is not None for item in items], dtype=torch.bool)
        filler = next((item for item in items if item is not None), None)
        filler = self.blank() if filler is None else filler
        out = dict(self.collate([filler if item is None else item for item in items]))
        out["present"] = present
        return out


class TargetCodec(Stateful):
    """A head's data side: raw target value -> tensor, a batch of them, and outputs -> plain predictions.

    Implement ``encode`` for a head with a target column (and ``check`` when ``encode`` cannot run before the
    head is fitted: a label set is learnt first), ``collate`` for variable-length targets, ``decode`` for
    anything but ``predictions.tolist()``, and ``state``. A head without a target column uses this class as it
    is, or a subclass that only decodes.
    """

    def check(self, value: Any) -> None:
        """Before fitting: raise ``ValueError`` if ``value`` can never be a target (a list where a label is due)."""

    def encode(self, value: Any) -> Tensor:
        """One raw target value -> a tensor. Raise ``ValueError`` saying what was expected."""
        raise NotImplementedError(f"{type(self).__name__} encodes no target")

    def collate(self, targets: Sequence[Tensor]) -> Tensor:
        """Stack a batch's encoded targets. Override for variable-length targets (pad with -100, say)."""
        return torch.stack(list(targets))

    def decode(self, output: Any) -> list[Any]:
        """A :class:`~mmlightning.HeadOutput` -> per-sample predictions as plain values (labels, texts, numbers)."""
        values: list[Any] = output.predictions.tolist()
        return values

    def scores(self, output: Any) -> list[dict[str, float]] | None:
        """Per-sample scores to write beside the predictions (a probability per class), or None (the default)."""
        return None

    def sheet(self, predictions: Tensor, columns: int = 8) -> str | None:
        """For a head that generates media: many predictions ``(K, ...)`` laid out as one (a grid of pictures), as
        a ``data:`` URI like ``decode``'s. None (the default): nothing to lay out."""
        return None


class NoPrediction(TargetCodec):
    """The data side of a pretraining objective: no target column, nothing to write per sample."""

    def decode(self, output: Any) -> list[Any]:
        return [None] * output.predictions.shape[0]
