"""`mmlightning auto`: point it at a table and a label; it infers each column's role, trains a preset within a time
limit, and prints the role table, the leaderboard and the folder (re-run any model with ``mmlightning fit
--config FOLDER/configs/NAME.yaml``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from mmlightning.parser import CommandParser
from mmlightning.roles import PRESETS


def auto_main(argv: Sequence[str]) -> int:
    parser = CommandParser("mmlightning auto", (__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--train", required=True, help="the training rows: a CSV, JSONL or Parquet manifest, or a folder with one"
    )
    parser.add_argument("--label", required=True, help="the column to predict")
    parser.add_argument(
        "--tuning",
        default=None,
        help="rows that pick checkpoints and ensemble members (default: 10%% of --train, held out)",
    )
    parser.add_argument(
        "--preset",
        default="fast",
        choices=PRESETS,
        help="fast (frozen pretrained encoders), balanced (text fine-tuned), best (an ensemble)",
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
    predictor = Predictor(args.label, args.preset, args.out, args.column_types, args.seed)
    if args.dry_run:
        print(predictor.dry_run(args.train, args.tuning, args.root))
        return 0
    predictor.fit(args.train, args.tuning, args.time_limit, args.root)
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
    return 0
