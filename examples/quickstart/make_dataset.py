"""Make the quickstart dataset: small pictures of shapes with captions, where the label needs both.

Each sample is a picture of a shape in a colour and a caption naming a shape and a colour. The label says which
of the caption's two claims hold:
  both_true    the caption names the drawn shape and colour
  shape_wrong  the colour is right, the shape is not
  colour_wrong the shape is right, the colour is not
Neither the picture alone nor the caption alone can tell these apart (each class is balanced over pictures and
captions), so a model has to fuse them.

    python examples/quickstart/make_dataset.py OUT_DIR [--train 1200] [--val 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle"]
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220)}
LABELS = ["both_true", "shape_wrong", "colour_wrong"]
TEMPLATES = [
    "a {c} {s}",
    "there is a {c} {s} here",
    "this picture shows a {c} {s}",
    "look, a {c} {s}",
    "{c} {s} on a plain background",
]


def draw(shape: str, colour: str, rng: random.Random, size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(rng.randint(200, 255) for _ in range(3)))
    pen = ImageDraw.Draw(image)
    r = rng.randint(size // 5, size // 3)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    box = [cx - r, cy - r, cx + r, cy + r]
    fill = tuple(min(255, max(0, v + rng.randint(-25, 25))) for v in COLOURS[colour])
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image


def sample(index: int, rng: random.Random) -> tuple[dict, Image.Image]:
    shape, colour, label = rng.choice(SHAPES), rng.choice(list(COLOURS)), LABELS[index % len(LABELS)]
    said_shape = rng.choice([s for s in SHAPES if s != shape]) if label == "shape_wrong" else shape
    said_colour = rng.choice([c for c in COLOURS if c != colour]) if label == "colour_wrong" else colour
    text = rng.choice(TEMPLATES).format(c=said_colour, s=said_shape)
    return {"text": text, "label": label}, draw(shape, colour, rng)


def write_split(out: Path, split: str, count: int, rng: random.Random) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    with (out / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
        for i in range(count):
            row, image = sample(i, rng)
            name = f"images/{split}_{i:05d}.png"
            image.save(out / name)
            handle.write(json.dumps({"id": f"{split}_{i:05d}", "image": name, **row}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--val", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    write_split(args.out, "train", args.train, rng)
    write_split(args.out, "val", args.val, rng)
    print(f"wrote {args.train} train and {args.val} val samples to {args.out}")


if __name__ == "__main__":
    main()
