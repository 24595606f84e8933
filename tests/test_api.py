"""The short Python API: train, evaluate and predict in a few lines, sharing everything with the CLI."""

from __future__ import annotations

import json

from conftest import fit_shapes


def test_fit_then_predict_rows_a_dataframe_and_a_manifest(shapes_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = fit_shapes(shapes_data)
    assert (
        0 <= run.metrics["val/label/acc"] <= 1
        and (run.folder / "bundle.json").is_file()
        and (run.folder / "config.yaml").is_file()
    )
    rows = [json.loads(line) for line in (shapes_data / "val.jsonl").read_text().splitlines()[:5]]
    found = run.predict(rows, root=shapes_data)
    assert [r["id"] for r in found] == [r["id"] for r in rows]  # input order, ids kept
    assert found[0]["label"] in found[0]["label_scores"] and abs(sum(found[0]["label_scores"].values()) - 1) < 1e-3
    assert run.predict(shapes_data / "val.jsonl")[:5] == found
    import pandas

    assert run.predict(pandas.DataFrame(rows), root=shapes_data) == found
