"""The prepared-dataset directory: the one format every later stage reads.

Layout of a prepared dataset directory::

    train.safetensors, val.safetensors, test.safetensors
        seq      int64 [N, L]  history, oldest first, right-padded with `num_items`
        len_seq  int64 [N]     true history length (>= 1)
        next     int64 [N]     target item
        user     int64 [N]     internal user id
        time     int64 [N]     timestamp of the target interaction
    items.json   {"ids": [raw item id as str, index = internal id], "titles": [...]}
    users.json   {"ids": [raw user id as str, index = internal id]}
    stats.json   users, items, interactions, instances per split, max_len, split, content_hash, ...

Internal item ids are 0..num_items-1 in sorted order of the raw ids (docs/method.md §1); the padding id
is `num_items`. No pickles: arrays in safetensors, everything else in JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from distill.errors import DataError
from distill.io import read_json, write_json

SPLITS = ("train", "val", "test")
ARRAYS = ("seq", "len_seq", "next", "user", "time")


@dataclass
class Split:
    """One split's instances: history windows and their next items."""

    seq: np.ndarray
    len_seq: np.ndarray
    next: np.ndarray
    user: np.ndarray
    time: np.ndarray

    def __len__(self) -> int:
        return int(self.next.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.ascontiguousarray(getattr(self, name), dtype=np.int64) for name in ARRAYS}


@dataclass
class PreparedDataset:
    item_ids: list[str]
    titles: list[str]
    user_ids: list[str]
    train: Split
    val: Split
    test: Split
    stats: dict
    path: Path | None = None

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def pad_id(self) -> int:
        return self.num_items

    @property
    def max_len(self) -> int:
        return int(self.train.seq.shape[1])

    @property
    def content_hash(self) -> str:
        return self.stats["content_hash"]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def item_index(self) -> dict[str, int]:
        """Raw item id (as in the input data) -> internal id."""
        return {raw: i for i, raw in enumerate(self.item_ids)}

    def save(self, out: Path) -> None:
        """Write into an existing (temporary) directory; callers wrap this in `atomic_directory`."""
        out = Path(out)
        for name in SPLITS:
            save_file(self.split(name).arrays(), str(out / f"{name}.safetensors"))
        write_json(out / "items.json", {"ids": self.item_ids, "titles": self.titles})
        write_json(out / "users.json", {"ids": self.user_ids})
        write_json(out / "stats.json", self.stats)

    @classmethod
    def load(cls, path: str | Path) -> "PreparedDataset":
        path = Path(path)
        if not (path / "stats.json").is_file():
            raise DataError(f"{path.name}: not a prepared dataset (no stats.json); prepare the data first "
                            f"(`python -m distill prepare`)")
        stats = read_json(path / "stats.json")
        items = read_json(path / "items.json")
        users = read_json(path / "users.json")
        splits = {}
        for name in SPLITS:
            file = path / f"{name}.safetensors"
            try:
                arrays = load_file(str(file))
            except Exception as exc:  # safetensors raises several types for a damaged file
                raise DataError(f"{path.name}/{file.name}: cannot read ({exc}); prepare the dataset again") from None
            missing = [a for a in ARRAYS if a not in arrays]
            if missing:
                raise DataError(f"{path.name}/{file.name}: missing arrays {missing}; prepare the dataset again")
            splits[name] = Split(**{a: arrays[a] for a in ARRAYS})
        return cls(item_ids=items["ids"], titles=items["titles"], user_ids=users["ids"],
                   stats=stats, path=path, **splits)


def content_hash(item_ids: list[str], titles: list[str], splits: dict[str, Split]) -> str:
    """A hash of everything a model or a teacher sees: ids, titles and every split's arrays."""
    digest = hashlib.sha256()
    for raw, title in zip(item_ids, titles):
        digest.update(raw.encode("utf-8") + b"\x00" + title.encode("utf-8") + b"\x01")
    for name in SPLITS:
        for array_name, array in splits[name].arrays().items():
            digest.update(f"{name}/{array_name}/{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()
