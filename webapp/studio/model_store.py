"""The models a run's teacher may use: directories under MODEL_ROOT (`/models` in the images), named
by their path relative to it (`smollm2-135m`, `adapters/ml-lora`). A run's `model` and `adapter`
are such names, never server paths: anything else (not a string, `..`, an absolute path outside the
root, a name that is not there) gets one generic message, so the answers tell nothing about what
exists elsewhere on the worker. `GET /api/models/` lists what is there.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

MODEL_OPTIONS = ("model", "adapter")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,99}){0,4}")
LISTED_DEPTH = 2   # root/<name> and root/<group>/<name>


def model_root() -> Path:
    return Path(settings.MODEL_ROOT)


def unknown(option: str) -> str:
    return (f"{option} must be the name of a model directory under the studio's model folder; "
            "GET /api/models/ lists the names")


def resolve(option: str, value) -> Path:
    """The directory `value` names under MODEL_ROOT; ValueError(generic message) for anything else."""
    if not isinstance(value, str):
        raise ValueError(unknown(option))
    root = model_root().resolve()
    text = value
    if text.startswith("/"):
        try:
            text = str(Path(text).resolve().relative_to(root))
        except ValueError:
            raise ValueError(unknown(option)) from None
    if not NAME.fullmatch(text) or ".." in text.split("/"):
        raise ValueError(unknown(option))
    path = (root / text).resolve()
    if root not in path.parents or not path.is_dir():
        raise ValueError(unknown(option))
    return path


def name_of(option: str, value) -> str:
    """The name stored in a run's config (relative to MODEL_ROOT) for a valid `value`."""
    return str(resolve(option, value).relative_to(model_root().resolve()))


def list_models() -> list[dict]:
    """Every model directory (one holding a config.json: a model; adapter_config.json: a LoRA
    adapter) at most LISTED_DEPTH levels below MODEL_ROOT, by name."""
    root = model_root()
    if not root.is_dir():
        return []
    found = []
    for depth in range(1, LISTED_DEPTH + 1):
        for folder in sorted(root.glob("/".join(["*"] * depth))):
            if not folder.is_dir() or folder.is_symlink() or folder.name.startswith("."):
                continue
            kind = ("adapter" if (folder / "adapter_config.json").is_file()
                    else "model" if (folder / "config.json").is_file() else None)
            if kind:
                found.append({"name": str(folder.relative_to(root)), "kind": kind})
    return found
