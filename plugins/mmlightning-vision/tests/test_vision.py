"""mmlightning-vision: timm models as token encoders, transforms, bad images, local weights."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from mmlightning.testing import check_encoder
from mmlightning_vision import TimmEncoder


@pytest.mark.parametrize("name, tokens", [("test_vit", 17), ("test_resnet", 4)])
def test_tokens_for_vits_and_cnns(tmp_path, name, tokens):
    encoder = TimmEncoder(name, image_size=64, dim=24)
    features = check_encoder(encoder, encoder.example_values(tmp_path, 3), tmp_path)
    assert features.tokens.shape == (4, tokens, 24)  # ViT: 16 patches + class token; CNN: a 2x2 feature map
    assert features.grid == ((4, 4) if name == "test_vit" else (2, 2))  # the last H*W tokens


def test_train_and_eval_transforms(tmp_path):
    encoder = TimmEncoder("test_resnet", image_size=48, augment_args={"scale": (0.5, 1.0)})
    name = encoder.example_values(tmp_path, 1)[0]
    processor = encoder.processor()
    assert processor(name, tmp_path, train=True)["pixels"].shape == (3, 48, 48)
    evaluated = [processor(name, tmp_path, train=False)["pixels"] for _ in range(2)]
    assert torch.equal(*evaluated)  # evaluation is deterministic
    assert "RandomResizedCrop" in repr(processor.transform(True)) and "RandomResizedCrop" not in repr(
        processor.transform(False)
    )


def test_data_args_set_the_evaluation_crop():
    whole = TimmEncoder("test_resnet", image_size=48, data_args={"crop_pct": 1.0}).processor().transform(False)
    cropped = TimmEncoder("test_resnet", image_size=48, data_args={"crop_pct": 0.5}).processor().transform(False)
    assert "Resize(size=48," in repr(whole) and "Resize(size=96," in repr(cropped)  # then a 48 px centre crop
    with pytest.raises(ValueError, match="data_args has no key 'size'; it takes crop_pct"):
        TimmEncoder("test_resnet", data_args={"size": 64})


def test_channels_last_memory_gives_the_same_features():
    torch.manual_seed(0)
    fast = TimmEncoder("test_resnet", image_size=64).eval()
    plain = TimmEncoder("test_resnet", image_size=64, channels_last=False).eval()
    plain.load_state_dict(fast.state_dict())
    assert fast.model.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.model.conv1[0].weight.is_contiguous()
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = fast({"pixels": pixels}), plain({"pixels": pixels})
    torch.testing.assert_close(a.tokens, b.tokens, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_test_flip_averages_the_mirrored_picture_in_eval_mode_only(name):
    torch.manual_seed(0)
    flipped = TimmEncoder(name, image_size=64, test_flip=True).eval()
    plain = TimmEncoder(name, image_size=64).eval()
    plain.load_state_dict(flipped.state_dict())
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        both, mirror = flipped({"pixels": pixels}), flipped({"pixels": pixels.flip(-1)})
        alone = plain({"pixels": pixels})
    torch.testing.assert_close(both.pooled, mirror.pooled, rtol=1e-4, atol=1e-5)  # a mirror changes nothing
    height, width = both.grid
    cells = both.tokens[:, -height * width :].unflatten(1, (height, width))  # (B, H, W, D)
    mirrored_cells = mirror.tokens[:, -height * width :].unflatten(1, (height, width))
    torch.testing.assert_close(cells, mirrored_cells.flip(2), rtol=1e-4, atol=1e-5)  # each token keeps its cell
    assert not torch.allclose(both.pooled, alone.pooled)
    flipped.train(), plain.train()
    torch.manual_seed(1)
    trained = flipped({"pixels": pixels})
    torch.manual_seed(1)
    torch.testing.assert_close(trained.tokens, plain({"pixels": pixels}).tokens)  # training sees one picture


def test_bad_images_say_what_is_wrong(tmp_path):
    processor = TimmEncoder("test_resnet").processor()
    (tmp_path / "fake.jpg").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="image file not found: nope.png"):
        processor.check("nope.png", tmp_path)
    with pytest.raises(ValueError, match="unreadable image"):
        processor.check("fake.jpg", tmp_path)
    with pytest.raises(ValueError, match="expected an image path"):
        processor.check(7, tmp_path)


def test_weights_from_a_local_file(tmp_path):
    source = TimmEncoder("test_resnet")
    path = tmp_path / "weights.pth"
    torch.save(source.model.state_dict(), path)
    loaded = TimmEncoder("test_resnet", checkpoint_path=str(path))
    for key, value in source.model.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key]), key
    with pytest.raises(FileNotFoundError, match="load from local files only"):
        TimmEncoder("test_resnet", checkpoint_path=str(tmp_path / "missing.pth"))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="timm has no model named 'resnet_18'"):
        TimmEncoder("resnet_18")


def test_preview_is_an_image(tmp_path):
    Image.new("RGB", (600, 300)).save(tmp_path / "big.png")
    assert TimmEncoder("test_resnet").processor().preview("big.png", Path(tmp_path)).size == (256, 128)


def test_weights_are_drawn_over_the_picture_as_the_model_saw_it(tmp_path):
    Image.new("RGB", (80, 64), (0, 0, 255)).save(tmp_path / "wide.png")  # the eval transform crops the centre 64x64
    processor = TimmEncoder("test_resnet", image_size=64).processor()
    weights = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # all on the top-left cell of a 2x2 grid
    shown = processor.preview_weights("wide.png", Path(tmp_path), weights)
    assert shown.size == (128, 128)  # 64 px, shown at least 128 px
    top_left, bottom_right = shown.getpixel((10, 10)), shown.getpixel((118, 118))
    assert top_left[0] > 100 and top_left[2] < 160  # half red over blue
    assert bottom_right == (0, 0, 255)  # no weight: the picture as it was


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that says it is ``width`` x ``height`` over a tiny compressed body: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    body = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_a_picture_over_the_pixel_limit_or_a_bomb_is_a_bad_value_named_before_decoding(tmp_path):
    from mmlightning_vision.processor import ImageProcessor

    processor = ImageProcessor({"input_size": (3, 32, 32)}, augment=False, max_pixels=10_000)
    Image.new("RGB", (200, 100)).save(tmp_path / "big.png")  # 20,000 pixels
    with pytest.raises(ValueError, match=r"big.png is 200x100 \(0 megapixels\), over the limit"):
        processor.check("big.png", tmp_path)
    with pytest.raises(ValueError, match="over the limit"):
        processor("big.png", tmp_path, train=False)
    png_header_only(tmp_path / "bomb.png", 30_000, 30_000)  # 900 megapixels declared
    default = ImageProcessor({"input_size": (3, 32, 32)}, augment=False)
    for call in (lambda: default.check("bomb.png", tmp_path), lambda: default("bomb.png", tmp_path, train=False)):
        with pytest.raises(ValueError, match="bomb.png"):
            call()
