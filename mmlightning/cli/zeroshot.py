"""`mmlightning zeroshot`: classify rows into labels the run never trained on, with its contrastive head: each
label becomes prompts for one tower, each row goes through the other, and the nearest label wins (CLIP)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mmlightning.parser import CommandParser


def zeroshot_main(argv: Sequence[str]) -> int:
    parser = CommandParser("mmlightning zeroshot", (__doc__ or "").split("\n")[0].split(": ", 1)[1])
    parser.add_argument("--ckpt_path", required=True, help="a run (or checkpoint) with a contrastive head")
    parser.add_argument("--labels", required=True, help="the labels, separated by commas: cat,dog,ship")
    parser.add_argument(
        "--template",
        action="append",
        default=None,
        help="a prompt with {} for the label, e.g. 'a photo of a {}.'; repeat it to average several (default: {})",
    )
    parser.add_argument("--rows", required=True, help="the manifest of rows to classify")
    parser.add_argument(
        "--prompt_modality",
        default=None,
        help="the encoder key the prompts go to (default: the one of the head's two whose column the rows lack)",
    )
    parser.add_argument("--head", default=None, help="the contrastive head, when the run has several")
    parser.add_argument("--name", default="label", help="the key of the prediction in each output row")
    parser.add_argument("--predictions_path", default="zeroshot.jsonl", help="one JSON line per row")
    parser.add_argument("--target", default=None, help="a column of the rows holding the true label: prints accuracy")
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(list(argv))
    from mmlightning.evaluate.zeroshot import accuracy, manifest_rows, zeroshot
    from mmlightning.logs import setup_logging

    setup_logging()
    rows, root = manifest_rows(args.rows)
    found = zeroshot(
        args.ckpt_path,
        args.labels.split(","),
        rows,
        args.template or ["{}"],
        root,
        args.prompt_modality,
        args.head,
        args.name,
        args.batch_size,
        progress=True,
    )
    out = Path(args.predictions_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row) + "\n" for row in found))
    print(f"{len(found)} rows classified into {len(args.labels.split(','))} labels: {out}")
    if args.target:
        print(f"accuracy against '{args.target}': {accuracy(found, rows, args.target, args.name):.4f}")
    return 0
