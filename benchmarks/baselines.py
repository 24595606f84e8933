"""Gradient-boosted trees on a dataset's record columns (scikit-learn's HistGradientBoosting), the baseline the
tabular benchmark runs beside its own models on the same split. Keys match the benchmark's (``label/acc``)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

NOT_RECORD = {"id", "label", "malignant", "rating", "image", "text"}  # targets, media, and a label leak


def _frame(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True)


def _record(train: pd.DataFrame, val: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The record columns; text columns as pandas categories (HistGradientBoosting reads them natively)."""
    columns = [c for c in train.columns if c not in NOT_RECORD]
    x_train, x_val = train[columns].copy(), val[columns].copy()
    for column in columns:
        if not pd.api.types.is_numeric_dtype(x_train[column]):
            kinds = pd.CategoricalDtype(sorted(x_train[column].dropna().astype(str).unique()))
            x_train[column] = x_train[column].astype("string").astype(kinds)
            x_val[column] = x_val[column].astype("string").astype(kinds)  # unseen values become missing
    return x_train, x_val


def _classify(x_train, y_train, x_val, y_val, balanced: bool = False) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    model = HistGradientBoostingClassifier(
        max_iter=500,
        learning_rate=0.05,
        early_stopping=True,
        random_state=0,
        categorical_features="from_dtype",
        class_weight="balanced" if balanced else None,
    )
    start = time.perf_counter()
    model.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    predicted = model.predict(x_val)
    found = {
        "acc": accuracy_score(y_val, predicted),
        "f1_macro": f1_score(y_val, predicted, average="macro"),
        "balanced_acc": balanced_accuracy_score(y_val, predicted),
        "fit_seconds": seconds,
    }
    if len(model.classes_) == 2:
        found["auroc"] = roc_auc_score(y_val == model.classes_[1], model.predict_proba(x_val)[:, 1])
    return found


def _regress(x_train, y_train, x_val, y_val) -> dict:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=2000, learning_rate=0.05, early_stopping=True, random_state=0, categorical_features="from_dtype"
    )
    start = time.perf_counter()
    model.fit(x_train, y_train)
    seconds = time.perf_counter() - start
    rmse = float(np.sqrt(np.mean((model.predict(x_val) - y_val) ** 2)))
    return {"rmse": rmse, "fit_seconds": seconds}


def _words(train: pd.Series, val: pd.Series, x_train: pd.DataFrame, x_val: pd.DataFrame):
    """The record plus a bag of the text's 500 most frequent words."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(max_features=500, binary=True)
    bag_train = vectorizer.fit_transform(train.fillna("")).toarray()
    bag_val = vectorizer.transform(val.fillna("")).toarray()
    names = [f"word_{w}" for w in vectorizer.get_feature_names_out()]
    with_train = pd.concat([x_train.reset_index(drop=True), pd.DataFrame(bag_train, columns=names)], axis=1)
    with_val = pd.concat([x_val.reset_index(drop=True), pd.DataFrame(bag_val, columns=names)], axis=1)
    return with_train, with_val


def _keyed(head: str, found: dict) -> dict:
    return {f"{head}/{k}" if k != "fit_seconds" else k: v for k, v in found.items()}


def boosted_trees(dataset: str, folder: Path, val_split: str) -> dict[str, dict]:
    """{inputs: {head/metric: value, fit_seconds}} for the dataset's record columns (and, for the reviews, text)."""
    train, val = _frame(folder / "train.jsonl"), _frame(folder / f"{val_split}.jsonl")
    x_train, x_val = _record(train, val)
    if dataset == "california":
        return {"record": _keyed("label", _regress(x_train, train["label"], x_val, val["label"]))}
    if dataset == "ham10000":
        label = _keyed("label", _classify(x_train, train["label"], x_val, val["label"], balanced=True))
        malignant = _keyed("malignant", _classify(x_train, train["malignant"], x_val, val["malignant"]))
        label["fit_seconds"] += malignant.pop("fit_seconds")
        return {"record": {**label, **malignant}}
    found = {"record": _keyed("label", _classify(x_train, train["label"], x_val, val["label"]))}
    if dataset == "clothing_reviews":
        w_train, w_val = _words(train["text"], val["text"], x_train, x_val)
        found["record + bag of words"] = _keyed("label", _classify(w_train, train["label"], w_val, val["label"]))
    return found
