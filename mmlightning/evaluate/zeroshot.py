"""Zero-shot classification with a contrastive run, as CLIP does it: each label becomes prompts ("a photo of a
{}"), the prompt tower embeds them, and each row goes to the label whose mean prompt embedding is nearest.

Any run with a head that embeds two modalities in one space (``Head.embeds()``, e.g. ``ContrastiveHead``) works:
image-text, audio-text, or whatever its encoders are. Which tower reads the prompts is the one whose column the
rows lack (or ``prompt_modality``). The answers come in the ordinary predictions format: ``{"id", NAME,
NAME_scores: {label: probability}}``.

    rows = zeroshot("runs/flickr", ["cat", "dog", "ship"], "cifar/test.jsonl", templates=["a photo of a {}."])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mmlightning.errors import ConfigError
from mmlightning.trained import TrainedRun, as_rows, load_run, pick_head

log = logging.getLogger(__name__)

TEMPLATES = ("{}",)


def check_labels(labels: Sequence[str]) -> list[str]:
    """The labels, stripped; at least two, none empty, none twice (case aside)."""
    found = [str(label).strip() for label in labels]
    if any(not label for label in found):
        raise ConfigError("--labels has an empty label: give names separated by commas, e.g. --labels cat,dog,ship")
    if len(found) < 2:
        raise ConfigError(f"--labels gives {len(found)} label ({', '.join(found)}); zero-shot picks among at least 2")
    seen: dict[str, str] = {}
    for label in found:
        if label.lower() in seen:
            raise ConfigError(f"--labels names '{seen[label.lower()]}' and '{label}': each label once")
        seen[label.lower()] = label
    return found


def check_templates(templates: Sequence[str]) -> list[str]:
    found = list(templates) or list(TEMPLATES)
    bad = [t for t in found if t.count("{}") != 1]
    if bad:
        raise ConfigError(f"each template holds the label once, as {{}}: got {bad[0]!r} (e.g. 'a photo of a {{}}.')")
    return found


def embedding_head(run: TrainedRun, head: str | None = None) -> str:
    """The head that embeds two modalities in one space: ``head``, or the only one the run has."""
    return pick_head(
        run,
        [key for key, h in run.model.heads.items() if len(h.embeds()) == 2],
        head,
        ("embeds no two modalities in one space", "contrastive head"),
        "zero-shot needs a run trained with a head that embeds two modalities in one space, such as ContrastiveHead",
    )


def towers(
    run: TrainedRun, keys: list[str], rows: Sequence[Mapping[str, Any]], prompt_modality: str | None
) -> tuple[str, str]:
    """(the key that reads the prompts, the key that reads the rows)."""
    if prompt_modality is not None:
        if prompt_modality not in keys:
            raise ConfigError(f"--prompt_modality must be one of the head's modalities {keys}, got {prompt_modality!r}")
        return prompt_modality, next(k for k in keys if k != prompt_modality)
    seen = {column for row in rows for column, value in row.items() if value is not None}
    lacking = [k for k in keys if not any(c in seen for c in run.bundle.input_columns(k))]
    if len(lacking) != 1:
        what = "have columns for both" if not lacking else "have no column for either of"
        raise ConfigError(
            f"the rows {what} {keys[0]} ({', '.join(run.bundle.input_columns(keys[0]))}) and {keys[1]} "
            f"({', '.join(run.bundle.input_columns(keys[1]))}): give --prompt_modality, the one the labels' prompts go to"
        )
    return lacking[0], next(k for k in keys if k != lacking[0])


def label_embeddings(run: TrainedRun, head: str, key: str, labels: list[str], templates: list[str]) -> torch.Tensor:
    """Each label's prompts embedded, averaged over the templates and normalised again: ``(L, E)``."""
    column = run.bundle.input_columns(key)[0]
    prompts = [{column: template.format(label)} for label in labels for template in templates]
    batch = run.bundle(prompts, ".")
    with torch.no_grad():
        encoded = run.model.encode(batch, keys=[key])
        found = run.model.heads[head].embeddings(encoded)[key]  # (L*T, E)
    mean = found.float().reshape(len(labels), len(templates), -1).mean(1)
    return torch.nn.functional.normalize(mean, dim=-1)


def zeroshot(
    run: str | Path | TrainedRun,
    labels: Sequence[str],
    rows: Any,
    templates: Sequence[str] = TEMPLATES,
    root: str | Path = ".",
    prompt_modality: str | None = None,
    head: str | None = None,
    name: str = "label",
    batch_size: int = 64,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Per row of ``rows`` (dicts, a DataFrame or a manifest path): ``{"id", name: label, name_scores: {label:
    probability}}``, the labels' probabilities from the similarity of the row's embedding to each label's prompts."""
    labels, templates = check_labels(labels), check_templates(templates)
    trained = run if isinstance(run, TrainedRun) else load_run(run)
    if isinstance(rows, (str, Path)):
        found, root = manifest_rows(rows)
    else:
        found, root = as_rows(rows, root)
    if not found:
        raise ConfigError("no rows to classify")
    key = embedding_head(trained, head)
    model_head = trained.model.heads[key]
    prompt_key, row_key = towers(trained, model_head.embeds(), found, prompt_modality)
    classes = label_embeddings(trained, key, prompt_key, labels, templates)  # (L, E)
    scale = model_head.similarity_scale()
    log.info(
        "zero-shot over %d labels x %d templates: prompts to '%s', rows through '%s'",
        len(labels),
        len(templates),
        prompt_key,
        row_key,
    )
    out: list[dict[str, Any]] = []
    starts = range(0, len(found), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="zero-shot", unit="batch")  # type: ignore[assignment]
    for start in starts:
        part = found[start : start + batch_size]
        batch = trained.bundle(part, root)
        with torch.no_grad():
            encoded = trained.model.encode(batch, keys=[row_key])
            embedded = model_head.embeddings(encoded)[row_key].float()  # (B, E)
        present = encoded[row_key].present
        probs = (scale * embedded @ classes.T).softmax(-1)  # (B, L)
        for i, row in enumerate(part):
            ident = str(row.get(trained.bundle.id_column, start + i))
            if not bool(present[i]):
                columns = ", ".join(trained.bundle.input_columns(row_key))
                raise ConfigError(f"row {start + i} (id {ident}) has no {columns}: zero-shot classifies by it")
            scores = dict(zip(labels, map(float, probs[i].tolist())))
            out.append({"id": ident, name: labels[int(probs[i].argmax())], f"{name}_scores": scores})
    return out


def manifest_rows(path: str | Path) -> tuple[list[dict[str, Any]], Path]:
    """A manifest's rows and folder; a row that cannot be read stops it, named by file and line."""
    from mmlightning.data.manifest import read_manifest
    from mmlightning.data.validate import BadRowsError, report

    manifest = read_manifest(path)
    if manifest.bad:
        raise BadRowsError(f"{report(manifest.bad, len(manifest.rows) + len(manifest.bad))}\nFix these rows first.")
    return [row.values for row in manifest.rows], Path(manifest.root)


def accuracy(
    predictions: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], target: str, name: str
) -> float:
    """The share of rows whose ``target`` column equals the predicted label (compared as text)."""
    if any(target not in row for row in rows):
        raise ConfigError(f"--target '{target}' is not a column of every row")
    hits = sum(str(p[name]) == str(r[target]) for p, r in zip(predictions, rows))
    return hits / max(1, len(rows))
