"""The deployment commands' command lines: `mmlightning export`, `prune`, `serve` and `sweep` parse their arguments
here, call :mod:`mmlightning.deploy` and print what they did."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmlightning.parser import CommandParser


def _first_line(module: Any) -> str:
    return str(module.__doc__).splitlines()[0]


def export_main(argv: Sequence[str]) -> int:
    from mmlightning.deploy import export as module
    from mmlightning.deploy.export import FORMATS, QUANTIZE, export

    parser = CommandParser("mmlightning export", _first_line(module))
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of `mmlightning fit`")
    parser.add_argument("--format", default="onnx", choices=list(FORMATS))
    parser.add_argument("--out", required=True, help="the folder to write (model, bundle.json, export.json)")
    parser.add_argument("--rows", default=None, help="a manifest to check the export on (default: the run's val)")
    parser.add_argument("--quantize", default=None, choices=list(QUANTIZE), help="dynamic int8 weights (Linear)")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed logit difference (fp32)")
    args = parser.parse_args(list(argv))
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"--out {args.out} is a file; give a folder to write the exported model into")
    report = export(args.ckpt_path, args.out, args.format, args.rows, args.quantize, args.tolerance)
    check = report["parity"]
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in check["max_abs_diff"].items())
    print(
        f"exported to {Path(args.out) / report['file']} ({args.format}{', ' + args.quantize if args.quantize else ''})"
        f"\nparity on {check['rows']} real rows: max abs difference {diffs}; predictions agree "
        f"{check['predictions_agree']:.1%}",
        file=sys.stdout,
    )
    return 0


def prune_main(argv: Sequence[str]) -> int:
    from mmlightning.deploy import prune as module
    from mmlightning.deploy.prune import prune_run

    parser = CommandParser("mmlightning prune", _first_line(module))
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--sparsity", type=float, default=0.5, help="the share of the weights set to zero")
    parser.add_argument("--epochs", type=int, default=1, help="re-fine-tuning epochs on the run's training data")
    parser.add_argument("--out", required=True)
    parser.add_argument("--include_frozen", action="store_true", help="prune frozen encoders too")
    args = parser.parse_args(list(argv))
    found = prune_run(args.ckpt_path, args.out, args.sparsity, args.epochs, args.include_frozen)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(found["metrics"].items()) if k.count("/") <= 2)
    print(
        f"pruned {found['pruned_tensors']} weight tensors to {found['sparsity']:.1%} zeros; after {args.epochs} "
        f"epoch(s): {shown or 'no validation'}\ncheckpoint: {found['checkpoint']}"
    )
    return 0


def serve_main(argv: Sequence[str]) -> int:
    from mmlightning.deploy import serve as module
    from mmlightning.deploy.serve import server

    parser = CommandParser("mmlightning serve", _first_line(module))
    parser.add_argument("--ckpt_path", default=None, help="a checkpoint of `mmlightning fit` (served on PyTorch)")
    parser.add_argument("--export", default=None, help="a folder from `mmlightning export` (served on its runtime)")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen on every interface")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max_batch_size", type=int, default=8)
    parser.add_argument("--batch_timeout", type=float, default=0.01, help="seconds to wait to fill a batch")
    parser.add_argument("--max_payload_size", default="20MB", help="a larger request body is a 413, never read")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to answer a request, else a 504")
    args = parser.parse_args(list(argv))
    if not args.ckpt_path and not args.export:
        parser.error("give --ckpt_path RUN/checkpoints/NAME.ckpt or --export DIR")
    if args.max_batch_size < 1 or args.batch_timeout < 0 or args.timeout <= args.batch_timeout:
        parser.error(
            f"need --max_batch_size >= 1 (got {args.max_batch_size}) and 0 <= --batch_timeout < --timeout (got "
            f"{args.batch_timeout:g} and {args.timeout:g} s)"
        )
    served = server(
        args.ckpt_path, args.export, args.max_batch_size, args.batch_timeout, args.max_payload_size, args.timeout
    )
    print(f"serving on http://{args.host}:{args.port}/predict (health: /health, schema: /docs)", file=sys.stderr)
    stop_on_signals()
    served.run(host=args.host, port=args.port, generate_client_file=False, log_level="warning")
    return 0


def stop_on_signals() -> None:
    """SIGINT and SIGTERM both stop the server and its LitServe workers, however it was started: a shell starts a
    background job with SIGINT ignored, and SIGTERM would otherwise end this process alone, leaving its workers."""
    import os
    import signal

    server = os.getpid()

    def interrupt(signum: int, frame: Any) -> None:
        if os.getpid() != server:  # a worker (forked with this handler) being shut down: end quietly
            raise SystemExit(0)
        import logging

        logging.getLogger("litserve").setLevel(logging.CRITICAL)  # its monitor thread's traceback as workers stop
        raise KeyboardInterrupt  # LitServe's run() shuts its workers down on it

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)


def sweep_main(argv: Sequence[str]) -> int:
    from mmlightning.deploy import sweep as module
    from mmlightning.deploy.sweep import read_space, sweep

    parser = CommandParser("mmlightning sweep", _first_line(module), config=False)
    parser.add_argument("--config", required=True, help="the base config (a `mmlightning fit` YAML)")
    parser.add_argument(
        "--space", required=True, help="a YAML/JSON file, or inline YAML, of key: {low, high[, log]} or {choices}"
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--metric", default="val/loss", help="a final metric of the run, e.g. val/label/acc")
    parser.add_argument("--direction", default="minimize", choices=["minimize", "maximize"])
    parser.add_argument("--out", default=None, help="the sweep folder (default runs/sweep-DATE-TIME)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(list(argv))
    if args.trials < 1:
        parser.error(f"--trials {args.trials}: a sweep needs at least one trial")
    if not Path(args.config).is_file():
        parser.error(f"--config {args.config}: no such file (the base `mmlightning fit` config)")
    result = sweep(args.config, read_space(args.space), args.trials, args.metric, args.direction, args.out, args.seed)
    print(f"\n{'trial':>5}  {'state':<9} {args.metric:>14}  values", file=sys.stdout)
    for record in result["trials"]:
        value = f"{record['value']:.4f}" if "value" in record else "-"
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record["values"].items())
        print(f"{record['trial']:>5}  {record.get('state', 'failed'):<9} {value:>14}  {shown}")
    print(
        f"\nbest: trial {result['best']} ({args.metric} {result['value']:.4f}); its config: {result['folder']}/best.yaml"
    )
    return 0


def robustness_main(argv: Sequence[str]) -> int:
    from mmlightning.evaluate import robustness as module
    from mmlightning.evaluate.robustness import SEVERITIES, log_wandb, robustness

    parser = CommandParser("mmlightning robustness", _first_line(module))
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of `mmlightning fit`")
    parser.add_argument("--rows", default=None, help="the manifest to score (default: the run's val manifest)")
    parser.add_argument("--out", default=None, help="where to write the table, plot and JSON (default: RUN/robustness)")
    parser.add_argument(
        "--severities", default=",".join(f"{s:g}" for s in SEVERITIES), help="comma-separated, in (0, 1]"
    )
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="seeds the corruptions' noise")
    parser.add_argument("--metric", default=None, help="the first head's metric to tabulate and plot (default acc)")
    parser.add_argument("--no_wandb", action="store_true", help="do not log the table and plot to W&B")
    args = parser.parse_args(list(argv))
    severities = [float(s) for s in args.severities.split(",") if s.strip()]
    report = robustness(args.ckpt_path, args.out, args.rows, severities, args.batch_size, args.seed, args.metric)
    folder = Path(report["folder"])
    print(
        (folder / "robustness.md").read_text()
        + f"\n{report['rows']} rows; written to {folder}: robustness.md, robustness.png, robustness.json"
    )
    if not args.no_wandb:
        print(f"W&B run (offline unless WANDB_MODE is set): {log_wandb(report)}")
    return 0


def ensemble_main(argv: Sequence[str]) -> int:
    from mmlightning.evaluate import ensemble as module
    from mmlightning.evaluate.ensemble import ensemble, log_wandb, table

    parser = CommandParser("mmlightning ensemble", _first_line(module))
    parser.add_argument("--ckpt_path", required=True, nargs="+", help="two or more checkpoints of `mmlightning fit`")
    parser.add_argument("--rows", default=None, help="the manifest to score (default: the first run's val manifest)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument(
        "--precision",
        default=None,
        help="32, bf16-mixed (bf16 autocast) or auto (bf16 where this CPU computes it natively); default: the first run's trainer.precision",
    )
    parser.add_argument("--out", default=None, help="where to write ensemble.json (default runs/ensemble-DATE-TIME)")
    parser.add_argument("--predictions_path", default=None, help="the ensemble's predictions, a JSON line per row")
    parser.add_argument("--no_wandb", action="store_true", help="do not log the scores and the table to W&B")
    args = parser.parse_args(list(argv))
    out = args.out or f"runs/ensemble-{time.strftime('%Y%m%d-%H%M%S')}"
    report = ensemble(args.ckpt_path, args.rows, out, args.batch_size, args.precision, args.predictions_path)
    written = [Path(out) / "ensemble.json", *([Path(report["predictions"])] if "predictions" in report else [])]
    print(
        table(report)
        + f"\n{report['rows']} rows, {len(report['members'])} members, precision {report['precision']}; written: "
        + ", ".join(map(str, written))
    )
    if not args.no_wandb:
        print(f"W&B run (offline unless WANDB_MODE is set): {log_wandb(report)}")
    return 0
