"""Several datasets at once: one dataset per batch, mixed proportionally, in turn or by ratios; CLI end to end."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mmlightning.data.sampling import TaskBatchSampler, ratios_in_order

from conftest import main_in, write_rows


def dataset_of(index: int, sizes: list[int]) -> int:
    return next(d for d in range(len(sizes)) if index < sum(sizes[: d + 1]))


def test_proportional_sees_every_row_once_and_never_mixes_datasets():
    sizes = [10, 3, 25]
    batches = list(TaskBatchSampler(batch_size=4, sizes=sizes, sampling="proportional"))
    assert sorted(i for b in batches for i in b) == list(range(38)) and len(batches) == 3 + 1 + 7
    assert all(len({dataset_of(i, sizes) for i in b}) == 1 for b in batches)
    assert list(TaskBatchSampler(batch_size=4, sizes=sizes)) != list(
        TaskBatchSampler(batch_size=4, sizes=sizes, seed=1)
    )  # shuffled


def test_round_robin_takes_turns_and_restarts_the_smaller_dataset():
    sampler = TaskBatchSampler(batch_size=2, sizes=[8, 2], sampling="round_robin")
    order = [dataset_of(b[0], [8, 2]) for b in sampler]
    assert order == [0, 1] * 4 and len(sampler) == 8


def test_ratios_draw_datasets_by_weight_and_evaluation_goes_in_order():
    sampler = TaskBatchSampler(batch_size=1, sizes=[100, 100], sampling="ratios", ratios=[3, 1])
    counts = Counter(dataset_of(b[0], [100, 100]) for b in sampler)
    assert 130 < counts[0] < 170 and counts[0] + counts[1] == 200
    assert [b for b in TaskBatchSampler(batch_size=2, sizes=[3, 2], shuffle=False)] == [[0, 1], [2], [3, 4]]
    with pytest.raises(ValueError, match="needs a non-negative ratio per dataset"):
        TaskBatchSampler(batch_size=2, sizes=[3, 2], sampling="ratios", ratios=[1])
    with pytest.raises(ValueError, match="unknown \\['mvsa'\\], missing \\['flickr'\\]"):
        ratios_in_order(["flickr", "shapes"], {"mvsa": 1.0, "shapes": 2.0})


def test_under_ddp_each_process_takes_its_share_of_the_same_batches():
    from torch.utils.data import DistributedSampler

    sizes, data = [10, 3, 25], list(range(38))
    whole = list(TaskBatchSampler(batch_size=4, sizes=sizes, seed=5))  # 11 batches
    shares = [
        list(TaskBatchSampler(DistributedSampler(data, num_replicas=3, rank=r), 4, sizes=sizes, seed=5))
        for r in range(3)
    ]
    assert [len(share) for share in shares] == [4, 4, 4]  # padded from 11 to 12: every process steps as often
    assert sorted(map(tuple, sum(shares, []))) == sorted(
        map(tuple, whole + whole[:1])
    )  # nothing left out, one batch twice
    assert shares[1] == whole[1::3] and all(
        len({dataset_of(i, sizes) for i in b}) == 1 for share in shares for b in share
    )


def mixed_config(shapes_data, tmp_path) -> dict:
    """Two training datasets with their own heads; the second has no image column at all and another target."""
    rows = [json.loads(line) for line in (shapes_data / "train.jsonl").read_text().splitlines()]
    words = {"both_true": "calm", "colour_wrong": "loud", "shape_wrong": "odd"}
    topics = [
        {"id": f"t{i}", "text": f"a {words[r['label']]} note number {i}", "topic": r["label"]}
        for i, r in enumerate(rows)
    ]
    text_only = write_rows(tmp_path / "topics.jsonl", topics)  # no image column at all, another target
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": 1,
            "enable_progress_bar": False,
            "logger": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "default_root_dir": str(tmp_path),
        },
        "model": {
            "encoders": {
                "text": {
                    "class_path": "TextEncoder",
                    "init_args": {"dim": 16, "layers": 1, "heads": 2, "vocab_size": 100},
                },
                "image": {
                    "class_path": "TimmEncoder",
                    "init_args": {"model_name": "test_resnet", "image_size": 32, "dim": 16},
                },
            },
            "fusion": {"class_path": "ConcatFusion", "init_args": {"dim": 16}},
            "heads": {"label": {"class_path": "ClassificationHead"}, "topic": {"class_path": "ClassificationHead"}},
        },
        "data": {
            "train": {"shapes": str(shapes_data / "train.jsonl"), "topics": str(text_only)},
            "val": {"shapes": str(shapes_data / "val.jsonl"), "topics": str(text_only)},
            "sampling": "ratios",
            "ratios": {"shapes": 1.0, "topics": 1.0},
            "batch_size": 16,
        },
    }
    return config


def test_two_datasets_train_their_own_heads_and_one_lacks_the_image(shapes_data, tmp_path):
    results = main_in(tmp_path, mixed_config(shapes_data, tmp_path), "fit")
    assert {"val/label/acc", "val/topic/acc", "train/label/loss", "train/topic/loss"} <= set(results)


def test_mixed_datasets_train_under_ddp(shapes_data, tmp_path):
    config = mixed_config(shapes_data, tmp_path)
    # two processes over gloo; a batch from a dataset without a head's target leaves that head's weights unused
    config["trainer"].update({"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn_find_unused_parameters_true"})
    results = main_in(tmp_path, config, "fit")
    assert {"val/label/acc", "val/topic/acc", "train/label/loss", "train/topic/loss"} <= set(results)
