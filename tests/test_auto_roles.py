"""Column roles inferred from generated tables: each role, each refusal (`mmlightning auto`, Predictor)."""

from __future__ import annotations

import random

import pytest

from mmlightning.auto.infer import RoleError, infer_roles

from conftest import write_image


def table(n: int = 300, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    zips = [rng.randint(10000, 99999) for _ in range(25)]
    rows = []
    for i in range(n):
        rows.append(
            {
                "customer": 100000 + rng.randrange(10**6) * 7 + i,  # a number, different on each row: an id
                "zip": rng.choice(zips),  # 5-digit codes that repeat: a category
                "size": rng.choice(["S", "M", "L", "XL"]),  # short repeated strings: a category
                "age": rng.randint(18, 90),  # a quantity
                "income": round(rng.uniform(1e4, 1e5), 2),
                "review": " ".join(
                    rng.choice("good bad fit size colour fabric loved returned".split()) for _ in range(12)
                ),
                "label": rng.choice(["yes", "no"]),
            }
        )
    return rows


def roles_of(found) -> dict[str, str]:
    return {a.column: a.role for a in found.columns}


def test_each_role_of_a_table_is_inferred(tmp_path):
    found = infer_roles(table(), "label", tmp_path)
    assert roles_of(found) == {
        "label": "label",
        "customer": "id",
        "zip": "categorical",
        "size": "categorical",
        "age": "numeric",
        "income": "numeric",
        "review": "text",
    }
    assert found.task == "binary" and found.id_column == "customer"
    text = found.table()
    assert "codes: whole numbers of 5 digits" in text and "a different whole number on each" in text


def test_a_role_can_be_given(tmp_path):
    found = infer_roles(table(), "label", tmp_path, column_types={"zip": "numeric", "review": "ignore"})
    assert roles_of(found)["zip"] == "numeric" and roles_of(found)["review"] == "ignore"
    with pytest.raises(RoleError, match="no such role"):
        infer_roles(table(), "label", tmp_path, column_types={"zip": "postcode"})


def test_tasks_from_the_label(tmp_path):
    rows = table()
    for row, i in zip(rows, range(len(rows))):
        row["digit"], row["price"], row["tags"] = i % 10, 1.5 * i + 0.25, ["a", "b"][: 1 + i % 2]
    for label, task in [("digit", "multiclass"), ("price", "regression"), ("tags", "multilabel")]:
        others = {c: "ignore" for c in ("label", "digit", "price", "tags") if c != label}
        assert infer_roles(rows, label, tmp_path, others).task == task


def test_image_paths_with_some_missing_are_an_image_column(tmp_path):
    rows = table(60)
    for i, row in enumerate(rows):
        row["photo"] = f"pics/{i}.png"
        if i % 10:  # one file in ten is missing
            write_image(tmp_path / "pics" / f"{i}.png")
    found = infer_roles(rows, "label", tmp_path)
    photo = next(a for a in found.columns if a.column == "photo")
    assert photo.role == "image" and "6 missing" in photo.evidence
    assert sorted(photo.bad) == sorted(f"pics/{i}.png" for i in range(0, 60, 10))


def test_a_column_derived_from_the_label_is_left_out(tmp_path):
    rows = table()
    for row in rows:
        row["recommended"] = {"yes": "Y", "no": "N"}[row["label"]]
    found = infer_roles(rows, "label", tmp_path)
    assert roles_of(found)["recommended"] == "derived"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: [r.update(label="yes") for r in rows], "one value"),
        (lambda rows: [r.update(label=None) for r in rows[:200]], "missing in 200 of 300 rows"),
        (lambda rows: [r.update(notes=None) for r in rows], "'notes' is empty in all 300 rows"),
        (
            lambda rows: [r.update(photo=f"pics/{i}.jpg") for i, r in enumerate(rows)],
            "300 of 300 sampled files are not under",
        ),
        (lambda rows: None, "'colour' is not a column"),
    ],
    ids=["one-value", "label-mostly-missing", "empty-column", "missing-files", "no-label"],
)
def test_refusals_say_why(tmp_path, change, message):
    rows = table()
    change(rows)
    label = "colour" if message.startswith("'colour'") else "label"
    with pytest.raises(RoleError, match=message):
        infer_roles(rows, label, tmp_path)


def test_sound_and_video_are_told_by_content_not_name(tmp_path):
    import wave

    rows = table(40)
    for i, row in enumerate(rows):
        with wave.open(str(tmp_path / f"{i}.png"), "wb") as out:  # WAV bytes under a picture's name
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
            out.writeframes(b"\0\0" * 8000 * (1 + i % 2))
        row["clip"] = f"{i}.png"
        (tmp_path / f"{i}.bin").write_bytes(b"\0\0\0\x18ftypisom\0\0\2\0isomiso2avc1mp41" + bytes(64))
        row["film"] = f"{i}.bin"
        (tmp_path / f"{i}.m4a").write_bytes(b"\0\0\0\x18ftypM4A \0\0\2\0isomiso2" + bytes(64))
        row["voice"] = f"{i}.m4a"
    found = infer_roles(rows, "label", tmp_path)
    assert roles_of(found) | {"clip": "audio", "film": "video", "voice": "audio"} == roles_of(found)
    from mmlightning.auto.presets import components

    encoders, columns, head = components(found, "fast")
    assert encoders["clip"].component["init_args"]["sample_rate"] == 8000
    assert encoders["clip"].component["init_args"]["max_seconds"] == 2.0
    assert (
        columns["record"] == ["zip", "size", "age", "income"] and head.component["class_path"] == "ClassificationHead"
    )


def test_tags_per_word_are_a_tagging_task(tmp_path):
    rng = random.Random(0)
    rows = []
    for i in range(200):
        words = [rng.choice(["Anna", "Paris", "went", "to", "the", "IBM", "office"]) for _ in range(rng.randint(3, 9))]
        tags = ["B-PER" if w == "Anna" else "B-LOC" if w == "Paris" else "B-ORG" if w == "IBM" else "O" for w in words]
        rows.append({"sentence": i, "tokens": words, "tags": tags})
    found = infer_roles(rows, "tags", tmp_path)
    assert found.task == "ner" and roles_of(found) == {"tags": "label", "sentence": "id", "tokens": "text"}
    from mmlightning.auto.presets import components, plans

    encoders, columns, head = components(found, "fast")
    assert head.component["init_args"]["modality"] == "tokens" and head.fusion["class_path"] == "SingleStreamFusion"
    assert encoders["tokens"].component["init_args"]["case"] is True
    built = plans(found, "fast", "t.jsonl", "v.jsonl", str(tmp_path), tmp_path)
    assert [p.name for p in built] == ["tagger"] and built[0].metric == "val/tags/f1"


def test_an_ensemble_predicts_unless_clearly_worse_on_the_tuning_rows():
    from mmlightning.auto.board import within

    assert within(0.7514, 0.7541, "max", 361)  # 0.3 points apart on 361 rows: within one standard error (2.3)
    assert not within(0.70, 0.7541, "max", 361)
    assert within(0.465, 0.462, "min", 1000) and not within(0.48, 0.462, "min", 1000)  # RMSE: 1%


def test_best_trains_the_fine_tuned_model_the_five_frozen_then_more_fine_tuned_ones(tmp_path, monkeypatch):
    import mmlightning_text.roles
    from mmlightning.auto.presets import plans

    monkeypatch.setattr(mmlightning_text.roles, "has_minilm", lambda: True)  # the review is read by MiniLM
    found = infer_roles(table(), "label", tmp_path)
    built = plans(found, "best", "t.jsonl", "v.jsonl", str(tmp_path), tmp_path)
    assert [(p.name, p.kind) for p in built] == [
        ("concat, text fine-tuned", "fine-tuned"),
        ("concat", "frozen"),
        ("late", "frozen"),
        ("concat, seed 1", "frozen"),
        ("late, seed 1", "frozen"),
        ("concat, seed 2", "frozen"),
        ("late, text fine-tuned", "fine-tuned"),
        ("concat, text fine-tuned, seed 1", "fine-tuned"),
        ("late, text fine-tuned, seed 1", "fine-tuned"),
        ("concat, text fine-tuned, seed 2", "fine-tuned"),
        ("late, text fine-tuned, seed 2", "fine-tuned"),
    ]
    for plan in built:
        model = plan.config["model"]
        assert ("review" in model.get("freeze", [])) == (plan.kind == "frozen")
        assert model["optimizer"]["init_args"]["lr"] == (5e-5 if plan.kind == "fine-tuned" else 1e-3)
        assert model["fusion"]["class_path"] == ("LateFusion" if plan.name.startswith("late") else "ConcatFusion")
    assert [p.config["seed_everything"] for p in built[6:]] == [0, 1, 1, 2, 2]
    balanced = plans(found, "balanced", "t.jsonl", "v.jsonl", str(tmp_path), tmp_path)
    assert [p.name for p in balanced] == ["concat, text fine-tuned"]


def test_a_model_starts_only_if_half_the_time_its_kind_took_is_left(tmp_path):
    import time

    from mmlightning.auto.presets import Plan
    from mmlightning.auto.runner import train_one

    plan = Plan("late, text fine-tuned", {"trainer": {}}, "val/label/acc", "max", "fine-tuned")
    done = [{"seconds": 20.0, "kind": "frozen"}, {"seconds": 250.0, "kind": "fine-tuned"}]
    now = time.monotonic()
    entry = train_one(plan, 6, tmp_path, done, now + 100, now - 1000, cache=None)
    assert entry["note"].startswith("not started: ") and entry["kind"] == "fine-tuned"
    assert (tmp_path / "configs" / "7-late__text_fine_tuned.yaml").is_file()  # written, to read or re-run by hand
