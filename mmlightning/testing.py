"""The testing kit for plugin authors: the checks every encoder, fusion and head must pass.

Call them from your plugin's tests (nothing here is a pytest plugin, so nothing runs unasked)::

    from mmlightning.testing import check_encoder, check_fusion, check_head

    def test_my_fusion():
        check_fusion(MyFusion, dims={"text": 32, "image": 48})
"""

from __future__ import annotations

import copy
import functools
import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmlightning.contracts import Batch, Chart, Encoder, Fusion, Head, HeadContext
from mmlightning.distributed import run_distributed  # noqa: F401 - part of the kit
from mmlightning.features import Features
from mmlightning.stand_ins import ContractError, PooledFusion, tiny_fit, with_word_ids


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def random_features(batch: int, length: int, dim: int, missing: Sequence[int] = (), seed: int = 0) -> Features:
    """Features with random padding; samples listed in ``missing`` lack the modality."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, length, dim, generator=g)  # (B, N, D)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    mask = torch.arange(length)[None] < lengths[:, None]  # (B, N)
    present = torch.ones(batch, dtype=torch.bool)
    present[list(missing)] = False
    return Features.from_tokens(tokens, mask, present)


def check_features(features: Features, batch: int, dim: int, what: str) -> None:
    _require(isinstance(features, Features), f"{what} must return Features, got {type(features).__name__}")
    b, n, d = features.tokens.shape
    _require((b, d) == (batch, dim), f"{what} tokens are {tuple(features.tokens.shape)}; expected ({batch}, N, {dim})")
    _require(
        features.mask.shape == (batch, n) and features.mask.dtype == torch.bool, f"{what} mask must be bool (B, N)"
    )
    _require(
        features.pooled.shape == (batch, dim),
        f"{what} pooled is {tuple(features.pooled.shape)}; expected ({batch}, {dim})",
    )
    _require(features.present.shape == (batch,), f"{what} present must be (B,)")
    for name in ("tokens", "pooled"):
        _require(bool(torch.isfinite(getattr(features, name)).all()), f"{what} {name} has NaN or inf")
    absent = ~features.present
    _require(not features.mask[absent].any(), f"{what}: a sample without the modality has real tokens in its mask")
    if features.weights is not None:
        w = features.weights
        _require(
            w.shape == (batch, len(features.spans)),
            f"{what} weights are {tuple(w.shape)}; expected (B, number of spans) = ({batch}, {len(features.spans)})",
        )
        _require(
            bool(torch.isfinite(w).all()) and bool((w >= 0).all()), f"{what} weights must be finite and non-negative"
        )
        sums = w.sum(1)
        _require(
            torch.allclose(sums[features.present], torch.ones_like(sums[features.present]), atol=1e-5),
            f"{what} weights of a present sample must sum to 1",
        )
        spans_present = torch.stack([features.mask[:, s].any(1) for s in features.spans.values()], 1)  # (B, M)
        _require(not bool(w[~spans_present].any()), f"{what}: a span a sample lacks must get weight 0")


def _backward(module: torch.nn.Module, *outputs: Tensor) -> None:
    torch.stack([out.float().pow(2).mean() for out in outputs]).sum().backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    _require(any(g is not None for g in grads), f"{type(module).__name__}: no parameter got a gradient")
    _require(
        all(torch.isfinite(g).all() for g in grads if g is not None), f"{type(module).__name__}: non-finite gradient"
    )


def check_encoder(encoder: Encoder, values: Sequence[Any], root: Path) -> Features:
    """Fit, process, collate (with one missing sample), encode, backward, determinism, a picklable processor,
    a JSON fitted state and processor state, and a fresh instance restored from them giving the same output.

    Pass the encoder unfitted: the kit fits it on ``values`` (as training would, missing values left out)."""
    name = type(encoder).__name__
    fresh = copy.deepcopy(encoder)  # before fitting: what a new run builds from the config
    encoder.processor().check(next(v for v in values if v is not None), root)  # before fitting: it checks rows
    if not encoder.is_fitted:
        encoder.fit([v for v in values if v is not None])
    processor = encoder.processor()
    pickle.loads(pickle.dumps(processor))  # DataLoader workers get a copy
    for value in values:
        processor.check(value, root)
    items = [processor(v, root, train=True) for v in values] + [None]
    batch = processor.batch(items)
    _require(batch["present"].tolist() == [True] * len(values) + [False], "processor.batch must set present")
    encoder.train()
    features = encoder(batch)
    check_features(features, len(items), encoder.dim, name)
    _require(bool((features.pooled[-1] == 0).all()), f"{name}: a missing sample's pooled vector must be zeros")
    _backward(encoder, features.tokens, features.pooled)
    encoder.eval()
    eval_batch = processor.batch([processor(v, root, train=False) for v in values])
    with torch.no_grad():
        first, second = encoder(eval_batch), encoder(eval_batch)
    _require(torch.allclose(first.pooled, second.pooled), f"{name} is not deterministic in eval mode")
    _check_restored(encoder, fresh, processor, values, root, first)
    _check_decoded(processor, values, root)
    return features


def _check_decoded(processor: Any, values: Sequence[Any], root: Path) -> None:
    """A processor that stores decoded forms (``mmlightning optimize --decoded``) gives from them exactly what it
    gives from the value, in training (the same seed) and in evaluation."""
    from mmlightning.data.resume import seeded

    name = type(processor).__name__
    for value in values:
        decoded = processor.decoded(value, root)
        if decoded is None:
            continue
        _require(all(isinstance(t, Tensor) for t in decoded.values()), f"{name}.decoded must give tensors")
        for train in (True, False):
            a = seeded(7, functools.partial(processor, value, root, train))
            b = seeded(7, functools.partial(processor.from_decoded, decoded, train))
            same = a is None and b is None or a is not None and b is not None and a.keys() == b.keys()
            _require(
                same and all(torch.equal(a[k], b[k]) for k in a or {}),
                f"{name}.from_decoded(decoded(value)) gives other tensors than the processor does (train={train})",
            )


def _check_restored(
    encoder: Encoder, fresh: Encoder, processor: Any, values: Sequence[Any], root: Path, expected: Features
) -> None:
    """What a checkpoint and a saved bundle hold is enough: JSON states, then the same tensors and output."""
    name = type(encoder).__name__
    try:
        state = json.loads(json.dumps(encoder.fitted))
        processor_state = json.loads(json.dumps(processor.state()))
    except (TypeError, ValueError) as err:
        raise ContractError(f"{name}: its fitted state and its processor's state() must be JSON-able ({err})") from err
    fresh.set_fitted(state)
    fresh.load_state_dict(encoder.state_dict())
    restored = type(processor).from_state(processor_state)
    for value in values:
        a, b = processor(value, root, train=False), restored(value, root, train=False)
        _require(
            a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a),
            f"{name}: a processor rebuilt from state() gives other tensors",
        )
    fresh.eval()
    with torch.no_grad():
        again = fresh(restored.batch([restored(v, root, train=False) for v in values]))
    _require(
        torch.allclose(again.pooled, expected.pooled, atol=1e-6),
        f"{name}: a fresh instance with the saved state and weights gives another output",
    )


def check_fusion(
    fusion_cls: type[Fusion], dims: Mapping[str, int] | None = None, batch: int = 4, **kwargs: Any
) -> Fusion:
    """Shapes, backward, key-order independence, determinism, and missing modalities (no NaN, no leakage)."""
    dims = dict(dims or {"a": 12, "b": 20})
    torch.manual_seed(0)
    fusion = fusion_cls(dims, **kwargs)
    name = fusion_cls.__name__
    keys = sorted(dims)
    features = {k: random_features(batch, 3 + 2 * i, dims[k], seed=i) for i, k in enumerate(keys)}
    fusion.train()
    out = fusion(features)
    check_features(out, batch, fusion.dim, name)
    _backward(fusion, out.tokens, out.pooled)
    fusion.eval()
    with torch.no_grad():
        forward, backward = fusion(features), fusion(dict(reversed(list(features.items()))))
        _require(
            torch.allclose(forward.pooled, backward.pooled, atol=1e-6), f"{name}: the result depends on the key order"
        )
        _require(torch.allclose(forward.pooled, fusion(features).pooled), f"{name} is not deterministic in eval mode")
        _check_missing(fusion, dims, batch, keys)
    return fusion


def _check_missing(fusion: Fusion, dims: Mapping[str, int], batch: int, keys: list[str]) -> None:
    name = type(fusion).__name__
    missing = {k: [i for i in range(batch) if i % len(keys) == j and i > 0] for j, k in enumerate(keys)}
    features = {k: random_features(batch, 3 + 2 * j, dims[k], missing[k], seed=j) for j, k in enumerate(keys)}
    out = fusion(features)
    check_features(out, batch, fusion.dim, f"{name} (with missing modalities)")
    complete = torch.tensor([all(i not in missing[k] for k in keys) for i in range(batch)])
    alone = fusion({k: f.index(complete) for k, f in features.items()})
    _require(
        torch.allclose(out.pooled[complete], alone.pooled, atol=1e-5),
        f"{name}: complete samples change when incomplete ones share the batch",
    )
    changed = {k: f for k, f in features.items()}
    first = keys[0]
    noisy = changed[first].tokens.clone()
    noisy[missing[first]] += 100.0  # values behind a missing modality must not matter
    changed[first] = Features(noisy, changed[first].mask, changed[first].pooled, changed[first].present)
    _require(
        torch.allclose(fusion(changed).pooled, out.pooled, atol=1e-5),
        f"{name}: a sample takes something from a modality it lacks",
    )


def check_head(
    head_cls: type[Head], dim: int = 16, batch: int = 6, encoders: Mapping[str, Encoder] | None = None, **kwargs: Any
) -> Head:
    """Fit on example targets, loss and backward, metrics, decode, no loss without targets, a tiny fit, and a
    target codec that pickles and rebuilds from its JSON state.

    ``encoders``: fitted encoders by key, for a head that reads what they learnt (``HeadContext.facts``). The
    encoded features are made for the keys the head ``reads()`` and those encoders (two generic keys if none).
    """
    torch.manual_seed(0)
    head = head_cls(dim, **kwargs)
    name = head_cls.__name__
    keys = sorted(set(head.reads()) | set(encoders or {})) or ["first", "second"]
    keys = keys if len(keys) > 1 else keys + ["other"]
    dims = {key: dim + 4 * i for i, key in enumerate(keys)}
    head.bind(HeadContext(name="task", encoder_dims=dims, fuse=PooledFusion(dims, dim), encoders=dict(encoders or {})))
    encoded = {key: with_word_ids(random_features(batch, 3 + i, dims[key], seed=i + 1)) for i, key in enumerate(keys)}
    fused = random_features(batch, sum(3 + i for i in range(len(keys))), dim)  # token-level, a span per modality
    starts = [sum(3 + j for j in range(i)) for i in range(len(keys) + 1)]
    fused.spans = {key: slice(starts[i], starts[i + 1]) for i, key in enumerate(keys)}
    targets, raw = {}, []
    if head.uses_target:
        raw = head.example_targets(batch)
        for value in raw:
            head.target().check(value)  # before fitting
        head.fit(raw)
        codec = _check_codec(head, raw)
        targets = {"task": codec.collate([codec.encode(v) for v in raw])}
    elif not head.is_fitted:
        head.fit([])
    data = Batch(inputs=head.example_inputs(encoded, raw), targets=targets, ids=[str(i) for i in range(batch)])
    data = head.prepare_batch(data, "train")
    out = head(fused, encoded, data)
    _require(
        out.loss is not None and out.loss.ndim == 0 and bool(torch.isfinite(out.loss)),
        f"{name}: loss must be a finite scalar",
    )
    _backward(head, out.loss)
    _require(len(head.target().decode(out)) == batch, f"{name}: its codec's decode must give one value per sample")
    head.eval()
    inputs = head.metric_inputs(head(fused, encoded, data), data)
    head.train()
    if inputs is None:
        raise ContractError(f"{name}: metric_inputs gave None in eval mode; metrics would never be computed")
    metric: Any
    for metric in head.make_metrics().values():
        metric.update(*inputs)
        for value in head.metric_values("m", metric.compute()).values():
            _require(isinstance(value, float), f"{name}: metric values must flatten to floats")
        for table, shown in head.metric_tables("m", metric.compute()).items():
            columns, rows = (shown.columns, shown.rows) if isinstance(shown, Chart) else shown
            _require(
                all(len(row) == len(columns) for row in rows),
                f"{name}: table '{table}' needs a cell per column in every row",
            )
            _require(
                not isinstance(shown, Chart) or len(columns) == {"confusion": 3, "bar": 2}.get(shown.kind),
                f"{name}: chart '{table}' of kind {getattr(shown, 'kind', '')!r} has the wrong number of columns",
            )
    if head.uses_target:
        _require(
            head(fused, encoded, Batch(inputs=data.inputs, ids=data.ids)).loss is None,
            f"{name}: without targets the loss must be None",
        )
    tiny_fit(head, fused, encoded, data)
    return head


def _check_codec(head: Head, raw: Sequence[Any]) -> Any:
    codec = head.target()
    name = type(codec).__name__
    try:
        state = json.loads(json.dumps(codec.state()))
    except (TypeError, ValueError) as err:
        raise ContractError(f"{name}: state() must be JSON-able ({err})") from err
    for rebuilt in (pickle.loads(pickle.dumps(codec)), type(codec).from_state(state)):
        for value in raw:
            _require(
                torch.equal(rebuilt.encode(value), codec.encode(value)),
                f"{name}: a rebuilt codec encodes {value!r} differently",
            )
    return codec
