"""`mmlightning auto`: point it at a table and a label; it infers each column's role, trains a preset within a time
limit, and prints the role table, the leaderboard and the folder (re-run any model with ``mmlightning fit
--config FOLDER/configs/NAME.yaml``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mmlightning.parser import CommandParser
from mmlightning.roles import PRESETS

FEWSHOT = """`mmlightning fewshot`: a classifier from k labelled rows a class. The columns' roles are inferred as `mmlightning
auto` does; one linear layer (logistic regression) learns from the frozen pretrained encoders' features (computed
once), then a pretrained image encoder's top levels are fine-tuned from the same rows with random crops and mirrors,
and that model predicts. The result is an ordinary run: predict, export and serve take it."""


def fewshot_main(argv: Sequence[str]) -> int:
    return auto_main(argv, fewshot=True)


def auto_main(argv: Sequence[str], fewshot: bool = False) -> int:
    name = "fewshot" if fewshot else "auto"
    parser = CommandParser(f"mmlightning {name}", ((FEWSHOT if fewshot else __doc__) or "").split("\n\n")[0])
    parser.add_argument(
        "--train", required=True, help="the training rows: a CSV, JSONL or Parquet manifest, or a folder with one"
    )
    parser.add_argument("--label", required=True, help="the column to predict")
    parser.add_argument(
        "--tuning",
        default=None,
        help="rows that pick checkpoints and ensemble members (default: 10%% of --train, held out)",
    )
    if not fewshot:
        parser.add_argument(
            "--preset",
            default="fast",
            choices=PRESETS,
            help="fast (frozen pretrained encoders), balanced (text fine-tuned), best (an ensemble), "
            "fewshot (a linear probe on frozen features, then the image encoder's top fine-tuned; with --k)",
        )
    parser.add_argument(
        "--k",
        type=int,
        required=fewshot,
        default=None,
        help="train on k rows of each class of --train (drawn with --seed)",
    )
    parser.add_argument(
        "--time_limit", type=float, default=None, help="seconds for all of it, feature caching included"
    )
    parser.add_argument(
        "--root", default=None, help="the folder media paths are relative to (default: the manifest's folder)"
    )
    parser.add_argument(
        "--column_types",
        type=json.loads,
        default=None,
        help='roles to use instead of the inferred ones, as JSON: \'{"zip": "categorical", "notes": "ignore"}\'',
    )
    parser.add_argument("--out", default=None, help="the predictor's folder (default runs/auto-DATE-TIME)")
    parser.add_argument(
        "--evaluate", default=None, help="rows with the label to score the result on (e.g. a dev split)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dry_run", action="store_true", help="print the role table and the preset's configs, train nothing"
    )
    args = parser.parse_args(list(argv))
    from mmlightning.auto.predictor import Predictor
    from mmlightning.logs import setup_logging

    setup_logging()
    preset = "fewshot" if fewshot else args.preset
    predictor = Predictor(args.label, preset, args.out, args.column_types, args.seed)
    if args.dry_run:
        print(predictor.dry_run(args.train, args.tuning, args.root))
        return 0
    predictor.fit(args.train, args.tuning, args.time_limit, args.root, k=args.k)
    print(
        f"\ncolumns:\n{predictor.roles.table() if predictor.roles else ''}\n\nleaderboard (scored on the tuning rows):\n{predictor.leaderboard_text()}"
    )
    if args.evaluate:
        scores = predictor.evaluate(args.evaluate, args.root)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if "/" not in k)
        print(f"\n{args.evaluate}: {shown}")
        predictor.summary["evaluated"] = {"rows": args.evaluate, "scores": scores}
        predictor._write()
    print(f"\npredictor saved in {predictor.path}; load it with mmlightning.Predictor.load('{predictor.path}')")
    if len(predictor.chosen) == 1:
        model = next(m for m in predictor.models if m["name"] == predictor.chosen[0])
        run = predictor.path / model["checkpoint"]
        print(f"its model is an ordinary run: mmlightning predict/export/serve --ckpt_path {run}")
    return 0
