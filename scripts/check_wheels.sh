#!/usr/bin/env bash
# Builds a wheel and an sdist of the core and of each first-party plugin (python -m build), installs the wheels into
# a fresh virtual environment outside the clone, as a user would (`pip install mmlightning[all]` from those files,
# the dependencies from the index), then runs `mmlightning plugins` and a two-step fit on generated data there.
# Usage: bash scripts/check_wheels.sh [WORK_DIR]   (default: a new temporary folder, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/dist"
python=${PYTHON:-$repo/.venv/bin/python}
for project in . plugins/*/; do
    "$python" -m build --sdist --wheel --outdir "$work/dist" "$project" > "$work/build.log" 2>&1 \
        || { tail -30 "$work/build.log"; echo "building $project failed" >&2; exit 1; }
done
ls "$work/dist"
python3 -m venv "$work/env"
"$work/env/bin/python" -m pip install -q --upgrade pip
# pip's resolver takes the first-party distributions from the built files and the rest from the index
"$work/env/bin/python" -m pip install -q --find-links "$work/dist" "mmlightning[all]" > "$work/install.log" 2>&1 \
    || { tail -30 "$work/install.log"; echo "installing the wheels failed" >&2; exit 1; }
"$work/env/bin/python" -m pip install -q --no-deps efficientnet-lite-pytorch
cd "$work"  # outside the clone: nothing of it is importable from here
"$work/env/bin/python" - <<'PY'
import json, random
import mmlightning, mmlightning_text
assert "site-packages" in mmlightning.__file__ and "site-packages" in mmlightning_text.__file__, mmlightning.__file__
rng = random.Random(0)
words = {"yes": ["great", "lovely", "fine"], "no": ["awful", "broken", "poor"]}
for split, count in (("train", 64), ("val", 16)):
    rows = []
    for i in range(count):
        label = rng.choice(["yes", "no"])
        rows.append({"id": f"{split}{i}", "text": f"a {rng.choice(words[label])} day", "age": rng.random(), "label": label})
    open(f"{split}.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows))
PY
"$work/env/bin/mmlightning" plugins
"$work/env/bin/mmlightning" fit --model.encoders.text=TextEncoder --model.encoders.text.dim=16 \
    --model.encoders.record=TabularEncoder --model.encoders.record.dim=16 --model.fusion=ConcatFusion \
    --model.heads.label=ClassificationHead --data.train=train.jsonl --data.val=val.jsonl --data.batch_size=32 \
    --trainer.max_epochs=1 --trainer.logger=false --results_path=fit.json
"$work/env/bin/python" -c "import json; r = json.load(open('fit.json')); assert r['epochs'] == 1, r; print('two-step fit from the installed wheels:', r['checkpoint'])"
