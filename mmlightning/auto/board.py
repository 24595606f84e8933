"""The leaderboard of a ``Predictor``: every model tried, best first, and whether the ensemble predicts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def rows(models: Sequence[dict[str, Any]], chosen: Sequence[str]) -> list[dict[str, Any]]:
    """Every model (and the ensemble, when one was scored), best first: name, score on the tuning rows, metric,
    seconds, best epoch, whether it predicts (several chosen: the ensemble does, not its members alone), a note."""

    def rank(m: dict[str, Any]) -> tuple[bool, float]:
        score = m.get("score") or 0.0
        return m.get("score") is None, -score if m.get("mode") == "max" else score

    def predicts(m: dict[str, Any]) -> bool:
        if len(chosen) > 1:
            return bool(m.get("members")) and list(m["members"]) == list(chosen)
        return m["name"] in chosen and not m.get("members")

    return [
        {
            "model": m["name"],
            "score": m.get("score"),
            "metric": m.get("metric"),
            "seconds": m.get("seconds"),
            "epochs": m.get("epoch"),
            "predicts": predicts(m),
            "note": m.get("note", "stopped by the time limit" if m.get("stopped_by_time_limit") else ""),
        }
        for m in sorted(models, key=rank)
    ]


def text(board: Sequence[dict[str, Any]]) -> str:
    """The leaderboard as a table for the terminal."""
    width = max(len(r["model"]) for r in board)
    lines = [f"{'model':<{width}}  {'score':>8}  {'seconds':>8}  predicts  metric / note"]
    for r in board:
        score = f"{r['score']:.4f}" if r["score"] is not None else "-"
        seconds = f"{r['seconds']:.0f}" if r["seconds"] else "-"
        predicts = "yes" if r["predicts"] else ""
        lines.append(f"{r['model']:<{width}}  {score:>8}  {seconds:>8}  {predicts:<8}  {r['metric'] or ''} {r['note']}")
    return "\n".join(lines)


def within(score: float, best: float, mode: str, rows: int) -> bool:
    """``score`` no worse than ``best`` by more than ``rows`` tuning rows can tell: one standard error for a score
    between 0 and 1 that rises (accuracy, F1), else 1% of the best (RMSE, MAE)."""
    if mode == "max" and 0 <= best <= 1:
        return score >= best - math.sqrt(best * (1 - best) / max(1, rows))
    return score >= best - 0.01 * abs(best) if mode == "max" else score <= best + 0.01 * abs(best)
