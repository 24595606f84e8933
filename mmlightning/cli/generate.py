"""`mmlightning generate`: draw from prompts with a generation run (text to image): files, grid.png, generated.jsonl.

With --rerank_with, a contrastive run keeps each prompt's best samples (DALL-E's CLIP reranking)."""

from __future__ import annotations

from collections.abc import Sequence

from mmlightning.parser import CommandParser


def generate_main(argv: Sequence[str]) -> int:
    parser = CommandParser("mmlightning generate", (__doc__ or "").split("\n")[0].split(": ", 1)[1])
    parser.add_argument("--ckpt_path", required=True, help="a run (or checkpoint) with a generation head")
    parser.add_argument("--prompt", action="append", default=None, help="a prompt; repeat it for several")
    parser.add_argument("--rows", default=None, help="a manifest of prompts instead: one sample (--n) per row")
    parser.add_argument("--column", default=None, help="the manifest's prompt column (default: the one the run reads)")
    parser.add_argument(
        "--n", type=int, default=None, help="samples per prompt (default 16 for --prompt, 1 for --rows)"
    )
    parser.add_argument("--out", default="generated", help="the folder for the files, grid.png and generated.jsonl")
    parser.add_argument("--head", default=None, help="the generation head, when the run has several")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (default: the head's)")
    parser.add_argument("--top_k", type=int, default=None, help="sample among the k likeliest (0: all)")
    parser.add_argument("--top_p", type=float, default=None, help="nucleus sampling: the smallest set reaching p")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (1: none, 0: no text)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rerank_with", default=None, help="a contrastive run that scores each sample against its prompt"
    )
    parser.add_argument(
        "--keep", type=int, default=None, help="with --rerank_with: the best K of each prompt's samples"
    )
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args(list(argv))
    if bool(args.prompt) == bool(args.rows):
        parser.error("give --prompt TEXT (repeatable) or --rows MANIFEST, one of them")
    if args.keep is not None and args.rerank_with is None:
        parser.error("--keep ranks samples, which needs --rerank_with RUN (a contrastive run)")
    from mmlightning.errors import ConfigError
    from mmlightning.evaluate.generate import RECORD, generate, generating_head
    from mmlightning.logs import setup_logging
    from mmlightning.trained import load_run

    setup_logging()
    run = load_run(args.ckpt_path)
    prompts, ids = args.prompt, None
    if args.rows:
        from mmlightning.evaluate.zeroshot import manifest_rows

        rows, _ = manifest_rows(args.rows)
        head = run.model.heads[generating_head(run, args.head)]
        column = args.column or run.bundle.input_columns(head.prompts()[0])[0]
        missing = [i for i, row in enumerate(rows) if column not in row]
        if missing:
            raise ConfigError(
                f"{args.rows}: row {missing[0] + 1} has no '{column}' column to draw from (give --column)"
            )
        prompts = [row[column] for row in rows]
        ids = [str(row.get(run.bundle.id_column, i)) for i, row in enumerate(rows)]
    n = args.n if args.n is not None else (1 if args.rows else 16)
    settings = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p, "guidance": args.guidance}
    written = generate(
        run,
        prompts,
        n,
        args.out,
        args.head,
        settings,
        args.seed,
        args.rerank_with,
        args.keep,
        ids,
        args.batch_size,
        True,
    )
    print(f"{len(written)} files for {len(prompts)} prompts in {args.out} (grid.png, {RECORD})")
    return 0
