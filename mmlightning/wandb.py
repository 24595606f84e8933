"""Weights & Biases: the default logger (offline unless an account is set up) and media for tables."""

from __future__ import annotations

import html
import logging
import netrc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmlightning.contracts import Batch
    from mmlightning.model import MultimodalModel

log = logging.getLogger(__name__)
USER_DATA_DIR = os.environ.get("WANDB_DATA_DIR")  # the user's own choice, if any, before a run sets it


MAX_LABEL_COLUMNS = 20  # a sample table gets a probability column per label up to this many


def keep_media_in(save_dir: str | Path) -> Path | None:
    """W&B stages the media of logged tables (sample images, attention maps) in its data folder, under the user's
    home by default, until ``wandb sync`` uploads them: put it under the logger's ``save_dir`` instead
    (``SAVE_DIR/wandb/data``), so an offline run's folder holds everything it needs. A ``WANDB_DATA_DIR`` the user
    set is left alone (None)."""
    if USER_DATA_DIR is not None:
        return None
    folder = Path(save_dir).resolve() / "wandb" / "data"
    os.environ["WANDB_DATA_DIR"] = str(folder)
    return folder


def has_account() -> bool:
    """True when W&B can reach an account: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def default_logger_config(save_dir: str = ".") -> dict[str, Any]:
    """The CLI's default logger: W&B, offline unless an account is configured (then ``wandb sync`` is not needed)."""
    offline = os.environ.get("WANDB_MODE", "") in {"offline", "disabled", "dryrun"} or not has_account()
    # absolute: W&B's service process resolves a relative folder against its own working directory, so a second
    # run in one process (a notebook that changed folder) would land in the first run's folder
    init = {
        "project": os.environ.get("WANDB_PROJECT", "mmlightning"),
        "save_dir": str(Path(save_dir).resolve()),
        "offline": offline,
    }
    return {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": init}


def attention_maps(model: MultimodalModel, batch: Batch) -> dict[str, Any]:
    """Where the fusion looked: per encoder key whose tokens lie on a grid (``Features.grid``) and that the fusion
    attended to, ``(B, H, W)`` attention over the grid, each sample's map summing to 1 (zeros for a sample without
    that input). ``{}`` when the fusion has no attention (``Fusion.attention``)."""
    import torch

    from mmlightning.layers import recording_attention

    if not model.fusion.has_attention:  # no attention to show: spare the extra forward pass
        return {}
    with torch.no_grad(), recording_attention(model.fusion):
        encoded = model.encode(batch)
        model.fusion(encoded)
        attention = model.fusion.attention()
    maps = {}
    for key, weights in attention.items():
        grid = encoded[key].grid if key in encoded else None
        if grid is None:
            continue
        cells = weights[:, -grid[0] * grid[1] :]  # (B, H*W): the grid is the last H*W tokens
        cells = cells / cells.sum(1, keepdim=True).clamp(min=1e-12) * encoded[key].present[:, None]
        maps[key] = cells.reshape(-1, *grid)  # (B, H, W)
    return maps


def sample_rows(
    bundle: Any, batch: Any, outputs: dict, limit: int, maps: dict[str, Any] | None = None
) -> tuple[list[str], list[list[Any]]]:
    """Table rows for the first ``limit`` samples: id, each input as media, each head's truth and prediction (and,
    for a head that gives scores, each label's probability as a column ``HEAD p(LABEL)``), and each attention map in ``maps`` (from :func:`attention_maps`) drawn over its input.
    ``bundle``: the model's :class:`~mmlightning.bundle.ProcessorBundle` (its columns say where each raw value is)."""
    root, maps = Path(batch.root), maps or {}
    decoded = {key: bundle.codecs[key].decode(out) for key, out in outputs.items()}
    scores = {key: bundle.codecs[key].scores(out) for key, out in outputs.items()}
    labels = {key: list(found[0]) for key, found in scores.items() if found}  # a column per label (up to 20)
    truth = {
        key: bundle.target_column(key) for key in decoded if key in bundle.targets and bundle.columns[key] in batch.raw
    }
    columns = ["id"] + list(bundle.processors)
    for key in decoded:
        columns += [f"{key} (truth)", f"{key} (predicted)"] if key in truth else [f"{key} (predicted)"]
        many = len(labels.get(key, [])) > MAX_LABEL_COLUMNS
        columns += [f"{key} (top 5)"] if many else [f"{key} p({label})" for label in labels.get(key, [])]
    columns += [f"{key} (attention)" for key in maps]
    rows = []
    for i, ident in enumerate(batch.ids[:limit]):
        raw = {column: values[i] for column, values in batch.raw.items()}
        row = [ident] + [
            _media(processor, bundle.value(key, raw), root) for key, processor in bundle.processors.items()
        ]
        for key, values in decoded.items():
            row += [raw[truth[key]], values[i]] if key in truth else [values[i]]
            row += _probabilities((scores[key] or [{}])[i] if key in labels else {})
        for key, weights in maps.items():
            value = bundle.value(key, raw)
            shown = None if value is None else _weighted(bundle.processors[key], value, root, weights[i])
            row.append(shown)
        rows.append(row)
    return columns, rows


def _probabilities(found: dict[str, float]) -> list[Any]:
    """A row's cells for one head's label probabilities: one per label, or the five likeliest as text."""
    if len(found) > MAX_LABEL_COLUMNS:
        top = sorted(found.items(), key=lambda item: -item[1])[:5]
        return [", ".join(f"{label} {p:.3f}" for label, p in top)]
    return [float(p) for p in found.values()]


def _media(processor: Any, value: Any, root: Path) -> Any:
    if value is None:
        return None
    try:
        shown = processor.preview(value, root)
    except (ValueError, OSError) as err:
        return f"<unreadable: {err}>"
    return _to_wandb(shown)


def _weighted(processor: Any, value: Any, root: Path, weights: Any) -> Any:
    try:
        shown = processor.preview_weights(value, root, weights)
    except (ValueError, OSError) as err:
        return f"<unreadable: {err}>"
    return None if shown is None else _to_wandb(shown)


def _to_wandb(shown: Any) -> Any:
    import wandb

    if hasattr(shown, "save") and hasattr(shown, "size"):  # a PIL image
        return wandb.Image(shown)
    if isinstance(shown, list) and shown and all(hasattr(f, "save") and hasattr(f, "size") for f in shown):
        return wandb.Video(animation(shown), format="gif")  # frames of a clip
    if isinstance(shown, tuple) and len(shown) == 2:  # (waveform, sample rate)
        return wandb.Audio(shown[0], sample_rate=shown[1])
    if isinstance(shown, dict):  # a record: a small table of field and value
        return wandb.Html(record_html(shown))
    return shown if isinstance(shown, (str, int, float)) else str(shown)


_CLIPS: str | None = None


def animation(frames: list[Any], fps: int = 4) -> str:
    """PIL frames -> an animated GIF in this process's temporary folder (W&B copies it when the table is logged;
    the folder goes when the process ends)."""
    import atexit
    import shutil
    import tempfile

    global _CLIPS
    if _CLIPS is None:
        _CLIPS = tempfile.mkdtemp(prefix="mmlightning-clips-")
        atexit.register(shutil.rmtree, _CLIPS, ignore_errors=True)
    handle, path = tempfile.mkstemp(dir=_CLIPS, suffix=".gif")
    os.close(handle)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0)
    return path


def record_html(record: dict[str, Any]) -> str:
    """``{field: value}`` as a two-column HTML table (missing values shown as blank)."""
    cells = "".join(
        f"<tr><td>{html.escape(str(key))}</td><td>{'' if value is None else html.escape(str(value))}</td></tr>"
        for key, value in record.items()
    )
    return f"<table><tr><th>field</th><th>value</th></tr>{cells}</table>"


def log_table(trainer: Any, key: str, columns: list[str], rows: list[list[Any]]) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            data = [
                [_to_wandb(cell) if hasattr(cell, "save") and hasattr(cell, "size") else cell for cell in row]
                for row in rows
            ]  # a picture in a cell (a head's samples) is shown as one
            logger.log_table(key=key, columns=columns, data=data, step=trainer.global_step)


def log_chart(trainer: Any, key: str, chart: Any) -> None:
    """A :class:`~mmlightning.contracts.Chart` as W&B's confusion-matrix or bar chart (its table comes with it)."""
    from lightning.pytorch.loggers import WandbLogger

    loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
    if not loggers:
        return
    import wandb

    title = f"{key.rsplit('/', 1)[0]}: {chart.title}" if chart.title else key
    if chart.kind == "confusion":
        table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=chart.rows)
        fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
        drawn = wandb.plot_table("wandb/confusion_matrix/v1", table, fields, {"title": title})
    else:
        table = wandb.Table(columns=chart.columns, data=chart.rows)
        drawn = wandb.plot.bar(table, chart.columns[0], chart.columns[1], title=title)
    for logger in loggers:
        logger.log_metrics({key: drawn}, step=trainer.global_step)  # type: ignore[dict-item]


def log_report(folder: str | Path, job_type: str, name: str, config: dict[str, Any], values: dict[str, Any]) -> str:
    """A command's report (``mmlightning robustness``, ``ensemble``) as a W&B run of its own in ``folder``
    (offline unless WANDB_MODE says otherwise): ``values`` maps a key to a number, a ``(columns, rows)`` table
    or an image path. Returns the run's folder."""
    import wandb

    run = wandb.init(
        project="mmlightning",
        dir=str(folder),
        job_type=job_type,
        name=name,
        mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
        config=config,
    )
    logged: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, tuple):
            logged[key] = wandb.Table(columns=value[0], data=value[1])
        elif isinstance(value, (str, Path)):
            logged[key] = wandb.Image(str(value))
        else:
            logged[key] = value
    run.log(logged)
    where = str(Path(run.dir).parent)
    run.finish()
    return where
