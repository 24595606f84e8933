"""`mmlightning optimize`: a fit config's splits as LitData shards, checked as `fit` checks them, for streaming.

    mmlightning optimize --config C.yaml --out shards/
    mmlightning fit --config C.yaml --data.train=shards://shards/train --data.val=shards://shards/val

Each split named in the config (or only --split) is read, every row checked with the model's processors (bad rows
stop the command with the same report as `fit`, or are skipped and written out with --data.on_bad_rows=skip), and
the rows that passed are written with the bytes of every file they name to OUT/SPLIT (OUT/SPLIT-NAME for one of
several datasets). Other options (--data.train=..., --model....) are as in `fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmlightning.parser import CommandParser

SPLITS = ("train", "val", "test", "predict")
FIT_OPTIONS = ("--data", "--model", "--trainer", "--seed_everything")


def optimize_main(argv: Sequence[str]) -> int:
    parser = CommandParser("mmlightning optimize", (__doc__ or "").split("\n")[0].split(": ", 1)[1], config=False)
    parser.add_argument("--config", required=True, help="the run's `mmlightning fit` config")
    parser.add_argument("--out", required=True, help="the folder the shard folders go in (one per split)")
    parser.add_argument("--split", default=None, help="only these splits, comma-separated (default: every one named)")
    parser.add_argument("--chunk_bytes", default="64MB", help="the size of each chunk file (LitData's chunk_bytes)")
    parser.add_argument("--overwrite", action="store_true", help="replace shard folders that exist")
    parser.add_argument(
        "--decoded",
        action="store_true",
        help="also store what the processors decode (pictures, token ids, log-mel frames), so that training skips "
        "decoding; used only by runs with the same processor settings",
    )
    own, rest = split_args(argv)
    args = parser.parse_args(own)
    if "://" in args.out:
        parser.error(
            f"--out {args.out}: shards are written to a local or mounted folder; copy the folder to object storage "
            "afterwards (aws s3 sync, gsutil rsync) and mount it where training runs"
        )
    if not Path(args.config).is_file():
        parser.error(f"--config {args.config}: no such file (the run's `mmlightning fit` config)")
    from mmlightning.logs import setup_logging

    setup_logging()
    splits = args.split.split(",") if args.split else None
    unknown = [s for s in splits or () if s not in SPLITS]
    if unknown:
        parser.error(f"--split {unknown[0]}: expected {', '.join(SPLITS)} (comma-separated)")
    written = optimize(args.config, rest, Path(args.out), splits, args.chunk_bytes, args.overwrite, args.decoded)
    print(f"{'split':<16}{'rows':>8}{'files':>8}{'size':>10}  {'decoded':<12}folder")
    for name, found in written.items():
        decoded = ",".join(found["decoded"]) or "-"
        size = f"{found['bytes'] / 1e6:>8.1f}MB"
        print(f"{name:<16}{found['rows']:>8}{found['files']:>8}{size}  {decoded:<12}{found['folder']}")
    flags = " ".join(f"--data.{name}=shards://{found['folder']}" for name, found in written.items() if "-" not in name)
    if flags:
        print(f"\ntrain from them: mmlightning fit --config {args.config} {flags}")
    return 0


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """This command's options, and the `fit` options (--data.*, --model.*, --trainer.*) it hands on."""
    own: list[str] = []
    rest: list[str] = []
    passing = False
    for arg in argv:
        if arg.startswith("--"):
            passing = arg.split("=")[0].split(".")[0] in FIT_OPTIONS
        (rest if passing else own).append(arg)
    return own, rest


def optimize(
    config: str,
    extra: Sequence[str],
    out: Path,
    splits: Sequence[str] | None,
    chunk_bytes: str,
    overwrite: bool,
    decoded: bool = False,
) -> dict[str, dict[str, Any]]:
    """Write each split's checked rows as shards under ``out`` (``decoded``: with the processors' decoded forms);
    returns per folder what was written."""
    from mmlightning.data.optimize import refuse_destination, write_shards
    from mmlightning.data.shards import file_columns, is_shards
    from mmlightning.errors import ConfigError

    model, data = build(config, extra)
    data.set_bundle(model.bundle())  # not fitted: its processors check rows, as fit checks the training split
    bundle = data.bundle
    wanted = [s for s in (splits or SPLITS) if data.paths[s]]
    if not wanted:
        raise ConfigError(f"{config} names no {' or '.join(splits or SPLITS)} manifest: give --data.SPLIT=PATH")
    jobs = []
    for split in wanted:
        sources = data.sources(split)
        for name, path in sources.items():
            if is_shards(path):
                raise ConfigError(f"--data.{split} is shards already ({path}); give the manifest it was written from")
            folder = out / (f"{split}-{name}" if name else split)
            refuse_destination(folder, overwrite)
            jobs.append((split, path, folder, len(sources) > 1))
    written, given = {}, data.skipped_rows_file
    for split, path, folder, lenient in jobs:
        manifest = data._read(path)
        data.skipped_rows_file = given or str(out / f"skipped_rows_{folder.name}.jsonl")
        rows = data._checked_rows(manifest, split, lenient)
        written[folder.name] = write_shards(
            rows,
            data._root(manifest),
            file_columns(bundle),
            folder,
            str(manifest.path),
            chunk_bytes,
            bundle if decoded else None,
        )
    return written


def build(config: str, extra: Sequence[str]) -> tuple[Any, Any]:
    """The model and datamodule `mmlightning fit --config` would build (nothing is trained)."""
    from mmlightning.data.datamodule import MultimodalDataModule
    from mmlightning.module import MultimodalModule
    from mmlightning.plugins import get_registry
    from mmlightning.trainer import Trainer
    from mmlightning.training import MultimodalCLI, Parser, quiet_upstream

    quiet_upstream()
    get_registry().import_all()
    cli = MultimodalCLI(
        MultimodalModule,
        MultimodalDataModule,
        run=False,
        args=["--config", config, *extra, "--trainer.logger=false"],
        parser_class=Parser,
        trainer_class=Trainer,
        save_config_callback=None,
        auto_configure_optimizers=False,
    )
    return cli.model, cli.datamodule
