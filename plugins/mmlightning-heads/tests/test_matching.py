"""mmlightning-heads: image-text matching with hard negatives through the model's own fusion."""

from __future__ import annotations

import torch

from mmlightning import Batch, Features, Fusion, HeadContext
from mmlightning.testing import check_head, random_features
from mmlightning_heads import MatchingHead


def test_contract():
    check_head(MatchingHead, dim=16)
    check_head(MatchingHead, dim=16, groups=True, hard_negatives=False)


class Recorder(Fusion):
    """Remembers which image rows each fused pair used (the image pooled vector's first value is its row)."""

    def __init__(self, dims):
        super().__init__(dims)
        self.dim, self.seen = 4, []

    def forward(self, features):
        self.seen.append(features["image"].pooled[:, 0].round().long().tolist())
        return Features.from_pooled(torch.zeros(len(features["image"].present), 4, requires_grad=True))


def test_hard_negatives_are_the_most_similar_wrong_items_and_never_the_same_group():
    torch.manual_seed(0)
    head = MatchingHead(4, embed_dim=4, groups=True)
    head.bind(HeadContext("match", {"image": 4, "text": 4}, fuse=Recorder({"image": 4, "text": 4})))
    head.fit([])
    similarity = torch.tensor([[9.0, 8.0, -9.0], [8.0, 9.0, -9.0], [-9.0, 0.0, 9.0]])
    same = torch.eye(3, dtype=torch.bool)
    picks = [head.negatives(similarity, same).tolist() for _ in range(20)]
    assert all(p[0] == 1 and p[1] == 0 for p in picks)  # the near-duplicate, never the far one
    images = torch.arange(4.0)[:, None].expand(4, 4).clone()  # row i's image says i
    encoded = {"image": Features.from_pooled(images), "text": random_features(4, 3, 4)}
    groups = torch.tensor([7, 7, 8, 9])  # rows 0 and 1: two captions of one image
    out = head(random_features(4, 1, 4), encoded, Batch(inputs={}, targets={"match": groups}, ids=list("abcd")))
    assert head.context.fuse.seen[0] == [0, 1, 2, 3]  # first: each image with the text of another pair
    swapped = head.context.fuse.seen[1]  # then each text with the image of another group
    assert all(groups[j] != groups[i] for i, j in enumerate(swapped)) and torch.isfinite(out.loss)
    assert head.target().decode(head(random_features(4, 1, 4), encoded, Batch(inputs={}, ids=list("abcd"))))[0] <= 1.0
