"""`reference`: the DLLM2Rec reference code's `train_data.csv`, `val_data.csv`, `test_data.csv`
and `data_statis.csv`, with internal ids and the split already made."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distill.data.readers.common import (GivenSplit, RawData, csv_rows, fixed_columns, renamable,
                                        require_file, titles_from_csv)
from distill.errors import DataError, give_hint

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions

REFERENCE_SPLITS = {"train": "train_data.csv", "val": "val_data.csv", "test": "test_data.csv"}
REFERENCE_STATS = "data_statis.csv"
# A list of integers as the reference code writes it: "[12, 5, 40, 40]". Parsed with json,
# never eval, so a crafted file cannot run code.
INT_LIST = re.compile(r"\[\s*\d+(\s*,\s*\d+)*\s*\]")


def read_reference(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """The reference code's CSVs: ids are already internal (0..item_num-1, padding item_num,
    every one kept even if unused) and the split is given. There are no users or timestamps:
    each row becomes its own user and the row order is the time. Titles are "item <id>" unless
    an items file is given, which must then title every id."""
    if not input.exists():
        raise DataError(f"{input.name}: not found; "
                        + give_hint("give the folder with the reference CSVs", "upload the reference CSVs"))
    folder = input if input.is_dir() else input.parent
    stats = folder / REFERENCE_STATS
    missing = [name for name in (*REFERENCE_SPLITS.values(), REFERENCE_STATS)
               if not (folder / name).is_file()]
    if missing:
        raise DataError(f"missing {', '.join(missing)}; the reference format is a folder with "
                        f"{', '.join(REFERENCE_SPLITS.values())} and {REFERENCE_STATS}; "
                        + give_hint("put them together and give the folder as --input", "upload all four"))
    columns = fixed_columns(("item_num",), "the reference format's data_statis.csv")
    line, (item_num,) = next(csv_rows(stats, columns))
    num_items = _int(item_num, stats, line, "item_num")
    item_names = np.arange(num_items).astype(str)
    given = {name: _reference_split(folder / file, num_items) for name, file in REFERENCE_SPLITS.items()}
    sources = [*REFERENCE_SPLITS.values(), REFERENCE_STATS]
    if items is None:
        titles = {item: f"item {item}" for item in item_names.tolist()}
        return RawData(item_names=item_names, user_names=None, titles=titles, titles_source=None,
                       title_row="", sources=sources, given=given)
    titles = titles_from_csv(require_file(items, "reference", "the items file"),
                              renamable(options, "item_col", "title_col"), options.sep)
    return RawData(item_names=item_names, user_names=None, titles=titles, titles_source=items.name,
                   title_row="{item},<title>", sources=[*sources, items.name], given=given)


def _reference_split(path: Path, num_items: int) -> GivenSplit:
    history: list[int] = []
    lengths, targets, lines = [], [], []
    columns = fixed_columns(("seq", "len_seq", "next"), "the reference format")
    for line, (seq, len_seq, target) in csv_rows(path, columns):
        if not INT_LIST.fullmatch(seq):
            raise DataError(f"{path.name} line {line}: seq {seq[:60]!r} is not a list of item ids "
                            f"like \"[12, 5, 40, 40]\"")
        padded = json.loads(seq)
        length = _int(len_seq, path, line, "len_seq")
        target = _int(target, path, line, "next")
        if not 1 <= length <= len(padded):
            raise DataError(f"{path.name} line {line}: len_seq {length} is outside 1..{len(padded)} "
                            f"(the length of seq)")
        if max(padded[:length]) >= num_items or target >= num_items:
            raise DataError(f"{path.name} line {line}: item id >= item_num {num_items} "
                            f"({REFERENCE_STATS}); ids must be 0..item_num-1")
        if any(i != num_items for i in padded[length:]):
            raise DataError(f"{path.name} line {line}: seq after len_seq must be padding "
                            f"{num_items} (item_num)")
        history.extend(padded[:length])
        lengths.append(length)
        targets.append(target)
        lines.append(line)
    return GivenSplit(history=np.array(history, dtype=np.int64), lengths=np.array(lengths, dtype=np.int64),
                      next=np.array(targets, dtype=np.int64), users=None, times=None,
                      lines=np.array(lines, dtype=np.int64), source=path.name)


def _int(value: str, path: Path, line: int, column: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise DataError(f"{path.name} line {line}: {column} {value!r} is not a non-negative integer")
    return number
