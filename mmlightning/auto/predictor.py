"""``Predictor``: point it at a table and a label; it works out the columns' roles, trains a preset's models within
a time limit, and predicts, scores, saves and loads as one object.

    predictor = mmlightning.Predictor(label="label", preset="fast").fit("train.jsonl", time_limit=300)
    predictor.leaderboard()
    predictor.predict(df)            # a list (a pandas Series for a DataFrame)
    predictor.evaluate("dev.jsonl")  # every metric of the task
    predictor.save("my_model"); mmlightning.Predictor.load("my_model").predict(df)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmlightning.auto import board
from mmlightning.auto.infer import Roles, infer_roles, present
from mmlightning.auto.presets import Plan, key_of, plans
from mmlightning.auto.runner import combines, ranked, score_ensemble, train_one
from mmlightning.auto.splits import HOLDOUT, absolute, holdout, load_split, per_class, series, write_jsonl
from mmlightning.errors import ConfigError, MissingFileError
from mmlightning.files import write_text
from mmlightning.roles import PRESETS

log = logging.getLogger(__name__)

FILE = "predictor.json"


class Predictor:
    """Infer roles, train a preset within a time limit, predict. ``path``: the folder for everything (default
    ``runs/auto-DATE-TIME``); ``column_types``: roles to use instead of the inferred ones (``{"zip":
    "categorical", "notes": "ignore"}``)."""

    def __init__(
        self,
        label: str,
        preset: str = "fast",
        path: str | Path | None = None,
        column_types: Mapping[str, str] | None = None,
        seed: int = 0,
    ) -> None:
        if preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        self.label, self.preset, self.seed = label, preset, seed
        self.column_types = dict(column_types or {})
        self.path = Path(path) if path is not None else Path("runs") / f"auto-{time.strftime('%Y%m%d-%H%M%S')}"
        self.roles: Roles | None = None
        self.models: list[dict[str, Any]] = []  # what was tried: name, score, seconds, checkpoint, ...
        self.chosen: list[str] = []  # the names of the models that predict (several: an ensemble)
        self.summary: dict[str, Any] = {}
        self._runs: list[Any] | None = None
        self._cache: Any = None  # frozen encoders' features (a FeatureCache), shared by the models fit trains

    # training

    def fit(
        self,
        train: Any,
        tuning_data: Any = None,
        time_limit: float | None = None,
        root: str | Path | None = None,
        k: int | None = None,
    ) -> Predictor:
        """Train on ``train`` (a DataFrame, a CSV/JSONL/Parquet path, or a folder with one such manifest; media
        paths relative to ``root``, default the manifest's folder or, for a DataFrame, the working folder).
        ``tuning_data`` picks checkpoints and ensemble members (default: 10% of ``train``, held out). ``time_limit``
        (seconds) counts all of it, feature caching included; training stops in time with the best checkpoint.
        ``k``: train on ``k`` rows of each class only (drawn with the seed), as the ``fewshot`` preset is meant for;
        without ``tuning_data`` that preset scores those same rows (there are none to spare)."""
        start = time.monotonic()
        deadline = start + time_limit if time_limit else math.inf
        if self.path.exists() and any(self.path.iterdir()):
            raise ConfigError(f"{self.path} exists and is not empty: give Predictor(path=...) a new folder")
        rows, train_root, where, roles = self._infer(train, root)
        labelled = [row for row in rows if present(row.get(self.label))]
        if len(labelled) < len(rows):
            log.warning(
                "%d of %d rows of %s have no '%s': left out of training",
                len(rows) - len(labelled),
                len(rows),
                where,
                self.label,
            )
        if k is not None:
            if roles.task not in ("binary", "multiclass"):
                raise ConfigError(f"k rows a class needs classes; the label '{self.label}' makes the task {roles.task}")
            labelled = per_class(labelled, self.label, k, self.seed, where)
            where = f"{k} rows a class of {where}"
        if tuning_data is None and self.preset == "fewshot":
            tuning, tuning_root, tuning_where = labelled, train_root, f"{where} (the training rows themselves)"
        elif tuning_data is None:
            labelled, tuning = holdout(labelled, self.label, roles.task, self.seed)
            tuning_root, tuning_where = train_root, f"{HOLDOUT:.0%} of {where}, held out"
        else:
            tuning, tuning_root, tuning_where = load_split(tuning_data, root)
            tuning = [row for row in tuning if present(row.get(self.label))]
        data = self.path / "data"
        data.mkdir(parents=True, exist_ok=True)
        media = [c for c, column in roles.sample.items() if any(h is not None for _, h in column.file_heads())]
        allow = []
        if Path(tuning_root).resolve() != Path(train_root).resolve():
            tuning = [absolute(row, media, tuning_root) for row in tuning]
            allow = [str(Path(tuning_root).resolve())]
        write_jsonl(data / "train.jsonl", labelled)
        write_jsonl(data / "tuning.jsonl", tuning)
        self.summary = {
            "preset": self.preset,
            "time_limit": time_limit,
            "train": where,
            "tuning": tuning_where,
            "rows": {"train": len(labelled), "tuning": len(tuning)},
            "k": k,
            "roles": roles.as_dict(),
        }
        todo = self._plans(roles, train_root, allow)
        log.info("columns of %s:\n%s", where, roles.table())
        if self._cache is None:
            from mmlightning.cache import FeatureCache

            self._cache = FeatureCache()
        for number, plan in enumerate(todo):
            self.models.append(train_one(plan, number, self.path, self.models, deadline, start, self._cache))
        finished = [m for m in self.models if m.get("checkpoint")]
        if not finished:
            raise ConfigError(
                f"no model finished its first validation within time_limit={time_limit} s "
                f"({', '.join(m['name'] + ': ' + m.get('note', '') for m in self.models)}); give a longer time_limit"
            )
        finished = ranked(finished, self.preset)
        self.chosen = [finished[0]["name"]]
        self._cache = None  # the features are not needed to predict
        if len(finished) > 1 and self.preset != "fewshot" and combines(self.path, finished[0], key_of(self.label)):
            entry, better = score_ensemble(self.path, finished, data / "tuning.jsonl", train_root, key_of(self.label))
            self.models.append(entry)
            if better:
                self.chosen = list(entry["members"])
        self.summary["seconds"] = round(time.monotonic() - start, 1)
        self.summary["chosen"] = self.chosen
        self._write()
        log.info(
            "leaderboard:\n%s\npredictor saved in %s (%.0f s)",
            self.leaderboard_text(),
            self.path,
            self.summary["seconds"],
        )
        return self

    def dry_run(self, train: Any, tuning_data: Any = None, root: str | Path | None = None) -> str:
        """The role table and the configs ``fit`` would train, trained nothing."""
        rows, train_root, where, roles = self._infer(train, root)
        todo = self._plans(roles, train_root)
        shown = [f"# {p.name} (ranked by {p.metric})\n{yaml.safe_dump(p.config, sort_keys=False)}" for p in todo]
        return f"columns of {where}:\n{roles.table()}\n\n" + "\n".join(shown)

    def _infer(self, train: Any, root: str | Path | None) -> tuple[list[dict[str, Any]], Path, str, Roles]:
        """The training rows, their media root and name, and the columns' roles (kept in ``self.roles``)."""
        rows, train_root, where = load_split(train, root)
        self.roles = infer_roles(rows, self.label, train_root, self.column_types, where, seed=self.seed)
        return rows, train_root, where, self.roles

    def _plans(self, roles: Roles, train_root: Path, allow: list[str] | None = None) -> list[Plan]:
        data = self.path / "data"
        splits = str(data / "train.jsonl"), str(data / "tuning.jsonl")
        return plans(
            roles, self.preset, *splits, str(Path(train_root).resolve()), self.path.resolve(), self.seed, allow
        )

    # predicting

    def _members(self) -> list[Any]:
        if self._runs is None:
            from mmlightning.trained import load_run

            if not self.chosen:
                raise ConfigError("this Predictor has not been fitted: call fit(...) or Predictor.load(path)")
            by_name = {m["name"]: m for m in self.models}
            self._runs = [load_run(self.path / by_name[name]["checkpoint"]) for name in self.chosen]
        return self._runs

    def _outputs(self, data: Any, root: str | Path | None, batch_size: int = 64) -> Any:
        """For each batch of ``data``: the first member's batch (targets included) and the members' combined outputs."""
        import torch

        from mmlightning.contracts import Batch
        from mmlightning.evaluate.ensemble import bf16, run_precision

        rows, base, _ = load_split(data, root, checked=False)
        runs = self._members()
        head = key_of(self.label)
        precision = run_precision(runs[0].config)  # as the models were trained and picked: bf16 where it was
        autocast = bf16(precision) if precision.startswith(("bf16", "32")) else contextlib.nullcontext
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            batches = [run.bundle(part, base) for run in runs]
            batches[0].ids = [str(r.get(runs[0].bundle.id_column, start + i)) for i, r in enumerate(part)]
            with torch.no_grad(), autocast():
                outputs = [run.model(Batch(inputs=b.inputs)) for run, b in zip(runs, batches)]
            merged = (
                outputs[0] if len(runs) == 1 else {head: runs[0].model.heads[head].combine([o[head] for o in outputs])}
            )
            yield batches[0], merged

    def predict(self, data: Any, root: str | Path | None = None) -> Any:
        """Each row's predicted label (a pandas Series for a DataFrame, else a list)."""
        head = key_of(self.label)
        decoded = [
            row[head]
            for batch, out in self._outputs(data, root)
            for row in self._members()[0].bundle.decode(out, batch.ids)
        ]
        return series(decoded, data, self.label)

    def predict_proba(self, data: Any, root: str | Path | None = None) -> Any:
        """Each row's probability per class (a pandas DataFrame for a DataFrame, else a list of dicts)."""
        head = key_of(self.label)
        found = []
        for batch, out in self._outputs(data, root):
            for row in self._members()[0].bundle.decode(out, batch.ids):
                if f"{head}_scores" not in row:
                    raise ConfigError(
                        f"predict_proba: the task is {self.roles_task()}, which has no class probabilities; use predict"
                    )
                found.append(row[f"{head}_scores"])
        if hasattr(data, "to_dict"):
            import pandas as pd

            return pd.DataFrame(found, index=data.index)
        return found

    def evaluate(self, data: Any, root: str | Path | None = None) -> dict[str, float]:
        """Every metric of the task on ``data`` (which has the label), as the validation of a run reports them."""
        from mmlightning.evaluate.scoring import Scores

        runs = self._members()
        head = key_of(self.label)
        scores = Scores({head: runs[0].model.heads[head]})
        for batch, out in self._outputs(data, root):
            if head not in batch.targets:
                raise ConfigError(f"evaluate: the rows have no '{self.label}' to score against")
            scores.update(out, batch)
        return scores.values()[head]

    def roles_task(self) -> str:
        return self.summary.get("roles", {}).get("task", "")

    # reporting, saving

    def leaderboard(self) -> list[dict[str, Any]]:
        """Every model tried, best first: its name, validation score (on the tuning rows), seconds, epochs, and
        whether it predicts."""
        return board.rows(self.models, self.chosen)

    def leaderboard_text(self) -> str:
        return board.text(self.leaderboard())

    def fit_summary(self) -> dict[str, Any]:
        """What fit did: the data, the roles, each model tried with its validation score, what predicts."""
        return {**self.summary, "models": self.models}

    def _write(self) -> None:
        state = {
            "label": self.label,
            "preset": self.preset,
            "seed": self.seed,
            "column_types": self.column_types,
            "models": self.models,
            "chosen": self.chosen,
            "summary": self.summary,
        }
        write_text(self.path / FILE, json.dumps(state, indent=2, default=str))

    def save(self, path: str | Path) -> Path:
        """Copy the predictor (its models, configs and data manifests) to ``path``; ``Predictor.load(path)``
        reads it back in any process."""
        path = Path(path)
        if path.resolve() != self.path.resolve():
            if path.exists():
                raise ConfigError(f"{path} exists already: save to a new folder")
            shutil.copytree(self.path, path, ignore=shutil.ignore_patterns("feature_cache", "wandb", "*.wandb"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        path = Path(path)
        if not (path / FILE).is_file():
            raise MissingFileError(f"{path} is not a saved Predictor (no {FILE} in it)")
        state = json.loads((path / FILE).read_text())
        predictor = cls(state["label"], state["preset"], path, state.get("column_types"), state.get("seed", 0))
        predictor.models, predictor.chosen, predictor.summary = state["models"], state["chosen"], state["summary"]
        return predictor
