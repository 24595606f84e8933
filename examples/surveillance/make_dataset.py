"""Make a small surveillance-style dataset of video clips with sound and an access-log line, offline.

Each clip shows a digit drifting across a dark frame (up, down, left or right) while its sound track plays a
keypad tone for a digit (DTMF: two sine waves, in noise); the log line names the code the door expected. ``alert``
is yes when the digit shown, the digit keyed and the expected code do not all agree: in each third of the alerts a
different one of the three disagrees with the other two, so each input decides a sixth of the rows.
Everything is synthetic (a font's digits, pure tones): a stand-in for ``../shared/data/av_clips``, which uses real
handwritten digits and real speech.

    python examples/surveillance/make_dataset.py surveillance_data [--train 600 --val 200]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmlightning_video.clips import write_clip

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PLACES = ["north door", "loading bay", "server room", "lobby", "car park"]
MOTIONS = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
DTMF = {  # (low, high) Hz of each key on a telephone keypad
    1: (697, 1209), 2: (697, 1336), 3: (697, 1477), 4: (770, 1209), 5: (770, 1336),
    6: (770, 1477), 7: (852, 1209), 8: (852, 1336), 9: (852, 1477), 0: (941, 1336),
}  # fmt: skip
SIZE, FRAMES, FPS, RATE = 64, 8, 8, 16000


def frames_of(digit: int, motion: str, rng: random.Random) -> np.ndarray:
    """``FRAMES`` frames of ``digit`` drifting by about a third of the frame. ``-> (T, S, S, 3)`` uint8."""
    font = ImageFont.load_default(size=rng.randint(24, 34))
    dx, dy = MOTIONS[motion]
    travel = SIZE // 3
    x0 = rng.randint(SIZE // 4, SIZE - SIZE // 4 - 16) - dx * travel // 2
    y0 = rng.randint(SIZE // 8, SIZE - SIZE // 4 - 24) - dy * travel // 2
    shade, background = rng.randint(170, 255), rng.randint(0, 40)
    clip = []
    for t in range(FRAMES):
        step = travel * t / (FRAMES - 1)
        image = Image.new("L", (SIZE, SIZE), background)
        ImageDraw.Draw(image).text((x0 + dx * step, y0 + dy * step), str(digit), fill=shade, font=font)
        clip.append(np.asarray(image.convert("RGB")))
    return np.stack(clip)


def tone_of(digit: int, rng: random.Random) -> np.ndarray:
    """Half a second or so of the key's two tones, at a random level, in noise."""
    seconds = rng.uniform(0.4, 0.7)
    t = np.arange(int(RATE * seconds)) / RATE
    low, high = DTMF[digit]
    wave = np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 0.3, t.shape)
    return (rng.uniform(0.15, 0.3) * wave + 0.1 * noise).clip(-1, 1)


def row(index: int, folder: Path, rng: random.Random) -> dict:
    expected = rng.randrange(10)
    shown = spoken = expected
    if rng.random() < 0.5:  # an alert: one input disagrees with the other two, each in a third of the alerts
        other = rng.choice([d for d in range(10) if d != expected])
        shown, spoken = rng.choice([(other, expected), (expected, other), (other, other)])
    motion = rng.choice(list(MOTIONS))
    name = f"clips/{folder.name}_{index:04d}.mp4"
    write_clip(folder.parent / name, frames_of(shown, motion, rng), FPS, tone_of(spoken, rng), RATE)
    alert = "no" if shown == spoken == expected else "yes"
    text = f"{rng.choice(PLACES)}: badge scanned, expected code {WORDS[expected]}"
    return {"id": f"{folder.name}_{index:04d}", "video": name, "text": text, "alert": alert, "digit": shown,
            "spoken": spoken, "motion": motion}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (args.out / "clips").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for split, count in (("train", args.train), ("val", args.val)):
        rows = [row(i, args.out / split, rng) for i in range(count)]
        (args.out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        alerts = sum(r["alert"] == "yes" for r in rows)
        print(f"{args.out / split}.jsonl: {count} clips ({alerts} alerts)")


if __name__ == "__main__":
    main()
