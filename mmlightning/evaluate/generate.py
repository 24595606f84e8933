"""Generation: prompts in, media out, through the run's one forward (a text-to-image run draws a picture per prompt).

Any run with a head that generates (``Head.prompts()`` names the encoder its prompt goes to) works: each prompt
becomes a row with only that column, the model's forward draws for it, and the head's codec gives the result as a
``data:`` URI (a PNG), which is written as a file. With ``rerank`` (a run with a contrastive head, CLIP-style), each
prompt's ``n`` samples are scored against the prompt and the best ``keep`` are kept, as DALL-E does.

    rows = generate("runs/mnist_generate", ["a handwritten seven"], n=16, out="drawn", rerank="runs/mnist_clip", keep=4)
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mmlightning.errors import ConfigError
from mmlightning.files import write_text
from mmlightning.trained import TrainedRun, load_run, pick_head

log = logging.getLogger(__name__)

SETTINGS = ("temperature", "top_k", "top_p", "guidance")
RECORD = "generated.jsonl"


def generating_head(run: TrainedRun, head: str | None = None) -> str:
    """The head that generates: ``head``, or the only one the run has."""
    return pick_head(
        run,
        [key for key, h in run.model.heads.items() if h.prompts()],
        head,
        ("does not generate", "generation head"),
        "generate needs a run trained with a head that draws from a prompt, such as ImageGenerationHead",
    )


def check_prompts(prompts: Sequence[Any]) -> list[str]:
    found = [str(p).strip() if p is not None else "" for p in prompts]
    empty = [i for i, p in enumerate(found) if not p]
    if empty:
        raise ConfigError(f"prompt {empty[0] + 1} of {len(found)} is empty: give some text to draw from")
    if not found:
        raise ConfigError("no prompts: give --prompt TEXT (repeatable) or --rows MANIFEST")
    return found


def save_uri(uri: str, stem: Path) -> Path:
    """A ``data:MIME;base64,...`` value written as ``stem`` + the extension of its type."""
    match = re.fullmatch(r"data:([\w./+-]+);base64,(.*)", uri, flags=re.S)
    if match is None:
        raise ValueError(f"the head's prediction is not a data: URI ({uri[:40]!r}...)")
    path = stem.with_suffix(mimetypes.guess_extension(match.group(1)) or ".bin")
    path.write_bytes(base64.b64decode(match.group(2)))
    return path


def settle(head: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Set the head's sampling ``settings`` (None: leave it); the values they replace, to put back."""
    before = {}
    for name, value in settings.items():
        if value is None:
            continue
        if not hasattr(head, name):
            raise ConfigError(
                f"{type(head).__name__} has no setting '{name}' (it has: "
                f"{', '.join(s for s in SETTINGS if hasattr(head, s)) or 'none'})"
            )
        before[name] = getattr(head, name)
        setattr(head, name, type(before[name])(value))
    return before


def generate(
    run: str | Path | TrainedRun,
    prompts: Sequence[Any],
    n: int = 1,
    out: str | Path = "generated",
    head: str | None = None,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    rerank: str | Path | TrainedRun | None = None,
    keep: int | None = None,
    ids: Sequence[str] | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """``n`` samples for each prompt, written under ``out`` (``ID_SAMPLE.png``), with ``grid.png`` (a row per prompt)
    and ``generated.jsonl`` (a line per file kept: id, prompt, sample, file, and with ``rerank`` its score and rank).
    Returns those lines."""
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    prompts = check_prompts(prompts)
    ids = [str(i) for i in (ids or range(len(prompts)))]
    trained = run if isinstance(run, TrainedRun) else load_run(run)
    key = generating_head(trained, head)
    model_head = trained.model.heads[key]
    prompt_key = model_head.prompts()[0]
    column = trained.bundle.input_columns(prompt_key)[0]
    processor = trained.bundle.processors[prompt_key]
    for ident, prompt in zip(ids, prompts):
        if processor.truncates(prompt):
            log.warning("prompt %s is longer than the text encoder reads; it is cut: %r", ident, prompt[:80])
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(ident, prompt, j) for ident, prompt in zip(ids, prompts) for j in range(n)]
    before = settle(model_head, settings or {})
    torch.manual_seed(seed)
    written: list[dict[str, Any]] = []
    drawn: list[torch.Tensor] = []
    batches = trained.batches([{column: prompt} for _, prompt, _ in jobs], ".", batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="generating", unit="batch", total=-(-len(jobs) // batch_size))
    try:
        for start, (_, outputs) in zip(range(0, len(jobs), batch_size), batches):
            output = outputs[key]
            drawn += list(output.predictions.float().cpu())
            for (ident, prompt, j), uri in zip(
                jobs[start : start + batch_size], trained.bundle.codecs[key].decode(output)
            ):
                path = save_uri(uri, folder / f"{_safe(ident)}_{j:02d}")
                written.append({"id": ident, "prompt": prompt, "sample": j, "file": path.name})
    finally:
        for name, value in before.items():
            setattr(model_head, name, value)
    if rerank is not None:
        written, drawn = ranked(rerank, written, drawn, folder, keep or n, column)
    sheet = trained.bundle.codecs[key].sheet(torch.stack(drawn), columns=min(len(drawn) // len(prompts), 16))
    if sheet is not None:
        save_uri(sheet, folder / "grid")
    write_text(folder / RECORD, "".join(json.dumps(row) + "\n" for row in written))
    return written


def ranked(
    rerank: str | Path | TrainedRun,
    written: list[dict[str, Any]],
    drawn: list[torch.Tensor],
    folder: Path,
    keep: int,
    column: str,
) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
    """Each prompt's samples scored by a contrastive run whose one tower reads ``column`` (the cosine of the prompt's embedding and the sample's), best
    first; the best ``keep`` kept and the other files removed."""
    from mmlightning.evaluate.zeroshot import embedding_head

    judge = rerank if isinstance(rerank, TrainedRun) else load_run(rerank)
    scorer = judge.model.heads[embedding_head(judge, None)]
    keys = scorer.embeds()
    reading = [k for k in keys if column in judge.bundle.input_columns(k)]
    if len(reading) != 1:
        raise ConfigError(
            f"the reranking run {judge.checkpoint} embeds {keys[0]} ({', '.join(judge.bundle.input_columns(keys[0]))}) "
            f"and {keys[1]} ({', '.join(judge.bundle.input_columns(keys[1]))}); one of them must read the prompts' "
            f"column '{column}', as the generating run does"
        )
    prompt_key, media_key = reading[0], next(k for k in keys if k != reading[0])
    text_column, media_column = judge.bundle.input_columns(prompt_key)[0], judge.bundle.input_columns(media_key)[0]
    prompts = sorted({row["prompt"] for row in written})
    with torch.no_grad():
        batch = judge.bundle([{text_column: p} for p in prompts], ".")
        texts = scorer.embeddings(judge.model.encode(batch, keys=[prompt_key]))[prompt_key].float()
        scores = []
        for start in range(0, len(written), 64):
            part = written[start : start + 64]
            batch = judge.bundle([{media_column: row["file"]} for row in part], folder)
            found = scorer.embeddings(judge.model.encode(batch, keys=[media_key]))[media_key].float()
            wanted = texts[[prompts.index(row["prompt"]) for row in part]]
            scores += (found * wanted).sum(-1).tolist()
    kept_rows, kept_drawn = [], []
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(written):
        groups.setdefault(row["id"], []).append(i)
    for rows in groups.values():
        order = sorted(rows, key=lambda i: -scores[i])
        for rank, i in enumerate(order):
            if rank < keep:
                kept_rows.append({**written[i], "score": round(scores[i], 6), "rank": rank})
                kept_drawn.append(drawn[i])
            else:
                (folder / written[i]["file"]).unlink(missing_ok=True)
    return kept_rows, kept_drawn


def _safe(ident: str) -> str:
    return re.sub(r"[^\w.-]", "_", ident)[:80] or "row"
