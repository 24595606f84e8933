"""mmlightning-heads: contrastive alignment (InfoNCE and sigmoid losses) and retrieval recall."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlightning import Batch, HeadContext
from mmlightning.testing import check_head, random_features
from mmlightning_heads import ContrastiveHead, RetrievalRecall
from mmlightning_heads.retrieval import distinct


@pytest.mark.parametrize("loss", ["infonce", "sigmoid"])
@pytest.mark.parametrize("groups", [False, True])
def test_contract(loss, groups):
    check_head(ContrastiveHead, dim=16, loss=loss, groups=groups)


def make_head(**kwargs) -> ContrastiveHead:
    head = ContrastiveHead(8, embed_dim=4, **kwargs)
    head.bind(HeadContext("pair", {"image": 6, "text": 5}))
    head.fit([])
    return head


def test_a_caption_of_the_same_image_is_a_positive_not_a_negative():
    head = make_head(groups=True, temperature=0.5)
    embeddings = F.normalize(torch.randn(3, 2, 4), dim=-1)  # rows 0 and 1: two captions of one image
    loss = head.pair_loss(embeddings, torch.tensor([7, 7, 8]), torch.tensor([True, True, True]))
    target = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    logits = 2.0 * embeddings[:, 0] @ embeddings[:, 1].T
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert torch.allclose(loss, expected, atol=1e-5)
    aligned = F.normalize(torch.eye(4)[:3], dim=-1)[:, None].expand(3, 2, 4)
    crossed = torch.stack([aligned[:, 0], aligned[[1, 2, 0], 1]], 1)
    groups, valid = torch.arange(3), torch.ones(3, dtype=torch.bool)
    for loss_name in ("infonce", "sigmoid"):
        head = make_head(loss=loss_name)
        assert head.pair_loss(aligned, groups, valid) < head.pair_loss(crossed, groups, valid)


def test_a_pair_missing_a_side_is_left_out():
    head = make_head()
    encoded = {"image": random_features(3, 2, 6, missing=[2]), "text": random_features(3, 4, 5)}
    batch = Batch(inputs={}, ids=["a", "b", "c"])
    full = head(None, encoded, batch).loss
    alone = head(
        None, {k: f.index(torch.tensor([0, 1])) for k, f in encoded.items()}, Batch(inputs={}, ids=["a", "b"])
    ).loss
    assert torch.allclose(full, alone)


def test_two_encoders_are_needed_and_named_ones_must_exist():
    head = ContrastiveHead(8, modalities=["image", "audio"])
    head.bind(HeadContext("pair", {"image": 6, "text": 5}))
    with pytest.raises(ValueError, match="aligns two encoders"):
        head.fit([])
    with pytest.raises(ValueError, match="loss must be one of"):
        ContrastiveHead(8, loss="triplet")


def test_recall_counts_each_image_once_and_any_caption_as_a_hit():
    images = torch.eye(3)  # 3 images, orthogonal
    captions = F.normalize(
        torch.stack([images[0], images[0] + 0.1 * images[1], images[1], images[1] + 0.5 * images[2]]), dim=1
    )
    groups = torch.tensor([0, 0, 1, 2])  # two captions of image 0; image 2's caption looks more like image 1
    embeddings = torch.stack([images[groups], captions], 1)  # (4, 2, 3): the image repeats once per caption
    assert (
        distinct(embeddings[:, 0], groups)[1].tolist() == [0, 1, 2] and len(distinct(embeddings[:, 1], groups)[1]) == 4
    )
    metric = RetrievalRecall((1, 2))
    metric.update(embeddings, groups)
    image_to_text_at1, image_to_text_at2, text_to_image_at1, text_to_image_at2 = metric.compute().tolist()
    assert (image_to_text_at1, image_to_text_at2) == (1.0, 1.0)
    assert (text_to_image_at1, text_to_image_at2) == (pytest.approx(3 / 4), 1.0)
