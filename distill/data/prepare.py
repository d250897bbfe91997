"""Preprocessing: raw interactions -> a prepared dataset directory (docs/method.md §1).

Steps, in order: optional rating filter; deterministic id maps (sorted raw ids, numerically when
all are integers); optional k-core filter; each user's interactions sorted by (timestamp, file
order); every interaction after a user's first becomes an instance (history of the previous <= L
items, oldest first, right-padded with `num_items`); the split (80/10/10 by target time, or
leave-one-out per user). Sources that come already split (RecBole sequence files, the reference
CSVs) keep their split and are only windowed to L.

Everything is computed in memory first and written with `atomic_directory`, so a failure leaves
no output behind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from distill.data.dataset import SPLITS, PreparedDataset, Split, content_hash
from distill.data.readers import READERS, detect_format
from distill.data.readers.common import Interactions, RawData
from distill.errors import ConfigError, DataError, OptionError, give_hint, option_hint
from distill.io import atomic_directory

SPLIT_METHODS = ("time", "loo")
MAX_LEN_LIMIT = 200
KCORE_LIMIT = 10_000
COLUMN_NAME_LIMIT = 100
# How a tab separator can be written in a form field or on the command line.
TAB_SPELLINGS = ("\\t", "tab", "TAB")


def _option(default, kind: str, help: str, *, choices: tuple | None = None, min: float | None = None,
            max: float | None = None, optional: bool = False):
    """A PrepareOptions field with its schema (prepare_fields) in the dataclass metadata."""
    return field(default=default, metadata={"type": kind, "help": help, "choices": choices, "min": min,
                                            "max": max, "optional": optional})


@dataclass(frozen=True)
class PrepareOptions:
    """How to read and cut the data; the defaults follow docs/method.md §1. Sources that come already
    split (RecBole sequence files, reference CSVs) keep their split and take only max_len.

    Every field carries its schema (type, help, choices, bounds) in its metadata: `prepare_fields`
    lists it, `from_form` parses text by it and `check` enforces it, so the command line and the
    web service share one set of bounds."""

    max_len: int = _option(10, "int", "L: history items kept per instance (the oldest are dropped first)",
                           min=1, max=MAX_LEN_LIMIT)
    split: str = _option("time", "str", "time: 80/10/10 by target time; loo: per user, last instance "
                         "test, the one before val", choices=SPLIT_METHODS)
    kcore: int = _option(0, "int", "keep users and items with at least this many interactions "
                         "(repeated until stable); 0 = off", min=0, max=KCORE_LIMIT)
    min_rating: float | None = _option(None, "float", "drop interactions rated below this; empty = keep all",
                                       optional=True)
    user_col: str = _option("user_id", "str", "user column of the interactions (csv, recbole)")
    item_col: str = _option("item_id", "str", "item column of the interactions and of the items file")
    time_col: str = _option("timestamp", "str", "timestamp column of the interactions")
    title_col: str = _option("title", "str", "title column of the items file")
    rating_col: str = _option("rating", "str", "rating column, read only when min_rating is set")
    sep: str | None = _option(None, "str", "field separator of csv files, one character (\\t for a tab); "
                              "empty = detected from the header line", optional=True)

    @classmethod
    def from_form(cls, values: Mapping[str, str]) -> "PrepareOptions":
        """Options from text values, as a web form or the command line sends them; an empty value
        (or None) means the default. Raises OptionError on an unknown name or a bad value."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(name for name in values if name not in known)
        if unknown:
            raise OptionError("detail", f"unknown option(s) {', '.join(map(repr, unknown))}; "
                                        f"known: {', '.join(sorted(known))}", unknown=unknown)
        parsed = {}
        for name, value in values.items():
            if value is None:
                continue
            text = value if isinstance(value, str) else str(value)
            if name != "sep":
                text = text.strip()
            if text == "":
                continue
            parsed[name] = _parse(known[name], text)
        options = cls(**parsed)
        options.check()
        return options

    def check(self) -> None:
        """Every value within its field's bounds (OptionError naming the field), and the column
        options naming distinct columns."""
        for spec in fields(self):
            _check_value(spec, getattr(self, spec.name))
        columns = ("user_col", "item_col", "time_col", "rating_col")
        for later in range(1, len(columns)):
            for earlier in range(later):
                _distinct(self, columns[earlier], columns[later])
        _distinct(self, "item_col", "title_col")


def prepare_fields() -> list[dict]:
    """The schema of the prepare options, in field order: one dict per option with name, type
    ("int", "float" or "str"), default, help, choices (a tuple or None), min and max (None where
    unbounded). A form or a command line is built from it."""
    return [{"name": spec.name, "type": spec.metadata["type"], "default": spec.default,
             "help": spec.metadata["help"], "choices": spec.metadata["choices"],
             "min": spec.metadata["min"], "max": spec.metadata["max"]} for spec in fields(PrepareOptions)]


_WHOLE = re.compile(r"[+-]?[0-9]+")


def _rule(spec) -> str:
    """What a field's value must be, for the error message."""
    meta = spec.metadata
    if meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])}"
    if meta["type"] == "int":
        return f"must be a whole number in {meta['min']}..{meta['max']}"
    if meta["type"] == "float":
        return "must be a finite number, or empty for none"
    if spec.name == "sep":
        return "must be one character (\\t for a tab), not a newline or a quote, or empty to detect it"
    return (f"must be a column name of 1..{COLUMN_NAME_LIMIT} characters, without control characters "
            f"or spaces at either end")


def _parse(spec, text: str):
    """The value of field `spec` written as `text` (not empty); OptionError when it is not one."""
    kind = spec.metadata["type"]
    bad = OptionError(spec.name, f"{spec.name}: {_rule(spec)}, got {text!r}")
    if kind == "int":
        if not _WHOLE.fullmatch(text):
            raise bad
        value = int(text)
    elif kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise bad from None
    elif spec.name == "sep" and text in TAB_SPELLINGS:
        value = "\t"
    else:
        value = text
    if not _valid(spec, value):
        raise bad
    return value


def _valid(spec, value) -> bool:
    meta = spec.metadata
    if value is None:
        return meta["optional"]
    kind = meta["type"]
    if kind == "int":
        return (isinstance(value, int) and not isinstance(value, bool)
                and meta["min"] <= value <= meta["max"])
    if kind == "float":
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    if not isinstance(value, str):
        return False
    if meta["choices"]:
        return value in meta["choices"]
    if spec.name == "sep":
        return len(value) == 1 and value not in "\r\n\"\x00"
    return (1 <= len(value) <= COLUMN_NAME_LIMIT and value == value.strip()
            and not any(ord(c) < 32 or ord(c) == 127 for c in value))


def _check_value(spec, value) -> None:
    if not _valid(spec, value):
        raise OptionError(spec.name, f"{spec.name}: {_rule(spec)}, got {value!r}")


def _distinct(options: PrepareOptions, first: str, second: str) -> None:
    """Two column options may not name the same column; the error is on the one the user changed."""
    if getattr(options, first) != getattr(options, second):
        return
    defaults = {spec.name: spec.default for spec in fields(options)}
    changed = first if getattr(options, first) != defaults[first] else second
    other = second if changed == first else first
    raise OptionError(changed, f"{changed}: names the same column as {other} "
                               f"({getattr(options, first)!r}); give each column option a different column")


Progress = Callable[[str, float], None]


def prepare_dataset(fmt: str | None, input: str | Path, out: str | Path, items: str | Path | None = None,
                    *, options: PrepareOptions | None = None,
                    progress: Progress | None = None) -> PreparedDataset:
    """Read `input` (and the titles file `items`) in format `fmt` and write the prepared
    dataset to `out` (docs/method.md §1). Returns the dataset, loaded from memory, with `path=out`.

    `input` may be a folder holding the format's files under their usual names (`items` then
    None); with `fmt=None` the format is recognised from those names (`detect_format`).
    `progress(message, fraction)`, when given, is called at a few points on the way."""
    report = progress or _quiet
    options = options or PrepareOptions()
    options.check()
    input = Path(input)
    if fmt is None:
        if not input.is_dir():
            raise ConfigError(f"{input.name}: no format given; " + give_hint(
                "give --format (csv, recbole, movielens or reference), or give the folder of the "
                "dataset's files as --input to recognise it by the file names",
                "choose the format, or upload all of the dataset's files to recognise it by their names"))
        fmt = detect_format(input)
    if fmt not in READERS:
        raise DataError(f"unknown format {fmt!r}; known formats: {', '.join(READERS)}")
    report("reading the files", 0.05)
    raw = READERS[fmt](input, Path(items) if items is not None else None, options)
    report("building the id maps and filters", 0.4)
    if raw.given is not None:
        dataset = _from_given(raw, options, report)
    else:
        dataset = _from_interactions(raw, options, report)
    dataset.stats.update(format=fmt, sources=raw.sources)
    report("writing the prepared dataset", 0.9)
    with atomic_directory(out) as tmp:
        dataset.save(tmp)
    dataset.path = Path(out)
    report("prepared", 1.0)
    return dataset


def _quiet(message: str, fraction: float) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# From interactions: ids, filters, windows, split


def _from_interactions(raw: RawData, options: PrepareOptions, report: Progress = _quiet) -> PreparedDataset:
    inter = _rating_filter(raw.interactions, options.min_rating)
    user_ids, user_rank = sorted_ids(raw.user_names)
    item_ids, item_rank = sorted_ids(raw.item_names)
    users, items = user_rank[inter.users], item_rank[inter.items]
    times, lines = inter.times, inter.lines
    keep = kcore_mask(users, items, options.kcore)
    if not keep.all():
        users, items, times, lines = users[keep], items[keep], times[keep], lines[keep]
    # Ids only of users and items still interacted with (after the rating and k-core filters).
    user_ids, users = _compact(user_ids, users)
    item_ids, items = _compact(item_ids, items)
    missing = _untitled(raw, item_ids)
    if missing:
        raise _no_title(raw, item_ids, missing, [(items, lines, inter.source)])

    report("cutting the history windows and the split", 0.6)
    order = stable_order(users, times)
    users, items, times = users[order], items[order], times[order]
    position = _position_in_group(users)
    # Every interaction after a user's first is an instance; `rows` are their targets, sorted by
    # (user, position).
    rows = np.flatnonzero(position >= 1)
    if options.split == "time":
        parts = time_split(times[rows])
    else:
        parts = leave_one_out(users[rows])
    splits = {}
    for name, part in zip(SPLITS, parts):
        target = rows[part]
        seq, len_seq = windows(items, target, position[target], options.max_len, len(item_ids))
        splits[name] = Split(seq=seq, len_seq=len_seq, next=items[target], user=users[target],
                             time=times[target])
    stats = {"interactions": len(users), "split": options.split, "kcore": options.kcore,
             "min_rating": options.min_rating}
    return _dataset(raw, item_ids, user_ids, splits, stats, options)


def _rating_filter(inter: Interactions, min_rating: float | None) -> Interactions:
    if min_rating is None:
        return inter
    keep = inter.ratings >= min_rating
    if not keep.any():
        raise DataError(f"{inter.source}: no interaction has rating >= {min_rating}; lower "
                        f"{option_hint('min_rating')}")
    return Interactions(users=inter.users[keep], items=inter.items[keep], times=inter.times[keep],
                        ratings=inter.ratings[keep], lines=inter.lines[keep], source=inter.source)


def sorted_ids(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The id map of docs/method.md §1 for distinct raw ids `names`: returns (raw ids in internal-id
    order, internal id of each name). Sorted numerically when every raw id is an integer, else
    lexicographically; never in set or file order."""
    order = np.argsort(names, kind="stable")
    try:
        numbers = names.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    else:  # ties such as "7" and "07" keep the lexicographic order
        order = order[np.argsort(numbers[order], kind="stable")]
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return names[order], rank


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Interactions kept by the k-core filter: drop users and items with fewer than k
    interactions, repeatedly, until every remaining user and item has at least k."""
    keep = np.ones(len(users), dtype=bool)
    if k <= 1:
        return keep
    while True:
        user_count = np.bincount(users[keep], minlength=users.max() + 1)
        item_count = np.bincount(items[keep], minlength=items.max() + 1)
        kept = keep & (user_count[users] >= k) & (item_count[items] >= k)
        if kept.sum() == keep.sum():
            break
        keep = kept
    if not keep.any():
        raise DataError(f"the {k}-core of the data is empty; lower {option_hint('kcore')}")
    return keep


def _compact(ids: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the ids still used as 0..n-1, keeping their order."""
    used = np.bincount(codes, minlength=len(ids)) > 0
    new_id = np.cumsum(used) - 1
    return ids[used], new_id[codes]


def stable_order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Indices that sort by (major, minor), ties kept in input order (here: file order).

    One stable argsort of a combined int64 key where it fits: twice as fast as `np.lexsort`
    on ML-10M's 10M rows.
    """
    low = int(minor.min())
    span = int(minor.max()) - low + 1
    if (int(major.max()) + 1) * span >= 2**63:
        return np.lexsort((minor, major))
    return np.argsort(major * span + (minor - low), kind="stable")


def _position_in_group(keys: np.ndarray) -> np.ndarray:
    """For an array sorted by key, each element's 0-based position within its run of equal keys."""
    n = len(keys)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))


def windows(flat: np.ndarray, ends: np.ndarray, lengths: np.ndarray, max_len: int,
            pad: int) -> tuple[np.ndarray, np.ndarray]:
    """History windows (docs/method.md §1): instance k's history is `flat[ends[k]-lengths[k]:ends[k]]`;
    keep its last `max_len` items, oldest first, right-padded with `pad`. Returns (seq, len_seq)."""
    len_seq = np.minimum(lengths, max_len).astype(np.int64)
    start = ends - len_seq
    seq = np.full((len(ends), max_len), pad, dtype=np.int64)
    for j in range(max_len):  # a loop over the L columns, each vectorised over all instances
        has = len_seq > j
        seq[has, j] = flat[start[has] + j]
    return seq, len_seq


def time_split(times: np.ndarray) -> list[np.ndarray]:
    """BIGRec/DLLM2Rec protocol (docs/method.md §1): instances sorted by target timestamp (ties by user,
    then position), the first 80% train, the next 10% val, the last 10% test.

    The instances come sorted by (user, position), so a stable sort on time alone breaks ties
    by user, then position.
    """
    order = np.argsort(times, kind="stable")
    n = len(order)
    return [order[: n * 8 // 10], order[n * 8 // 10: n * 9 // 10], order[n * 9 // 10:]]


def leave_one_out(users: np.ndarray) -> list[np.ndarray]:
    """Per user (instances sorted by user, then time): last instance test, the one before val,
    the rest train."""
    from_end = _position_in_group(users[::-1])[::-1]
    return [np.flatnonzero(from_end >= 2), np.flatnonzero(from_end == 1), np.flatnonzero(from_end == 0)]


# ---------------------------------------------------------------------------------------------
# From a given split (RecBole sequence files, reference CSVs)


def _from_given(raw: RawData, options: PrepareOptions, report: Progress = _quiet) -> PreparedDataset:
    if options.kcore or options.min_rating is not None:
        field = "kcore" if options.kcore else "min_rating"
        raise OptionError(field, f"{raw.sources[0]}: the data is already split into instances; kcore "
                                 f"and min_rating cannot be applied to it, leave {option_hint('kcore')} "
                                 f"and {option_hint('min_rating')} unset")
    parts = [raw.given[name] for name in SPLITS]
    # Every item the source names is kept: the reference format fixes the id space 0..item_num-1.
    item_ids, item_rank = sorted_ids(raw.item_names)
    missing = _untitled(raw, item_ids)
    if missing:
        raise _no_title(raw, item_ids, missing, [
            (item_rank[np.concatenate([p.history, p.next])],
             np.concatenate([np.repeat(p.lines, p.lengths), p.lines]), p.source) for p in parts])
    sizes = [len(p.next) for p in parts]
    row_numbers = np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])
    if raw.user_names is not None and all(p.users is not None for p in parts):
        user_ids, user_rank = sorted_ids(raw.user_names)
        users = [user_rank[p.users] for p in parts]
    else:  # no users in the source: each instance is its own user, named by its row number
        user_ids, users = np.arange(sum(sizes)).astype(str), row_numbers
    report("cutting the history windows", 0.6)
    # No timestamps: the row number stands in, so time order is the given split order.
    times = [p.times for p in parts] if all(p.times is not None for p in parts) else row_numbers
    splits = {}
    for name, part, user, time in zip(SPLITS, parts, users, times):
        seq, len_seq = windows(item_rank[part.history], np.cumsum(part.lengths), part.lengths,
                               options.max_len, len(item_ids))
        splits[name] = Split(seq=seq, len_seq=len_seq, next=item_rank[part.next], user=user, time=time)
    # Only the instances' targets are known to be interactions.
    stats = {"interactions": sum(sizes), "split": "given", "kcore": 0, "min_rating": None}
    return _dataset(raw, item_ids, user_ids, splits, stats, options)


# ---------------------------------------------------------------------------------------------
# Titles and the dataset


def _untitled(raw: RawData, item_ids: np.ndarray) -> list[int]:
    """Internal ids of kept items without a title (the teacher prompts with titles, docs/method.md §2)."""
    if raw.titles_source is None:
        return []
    return [i for i, item in enumerate(item_ids.tolist()) if not raw.titles.get(item)]


def _no_title(raw: RawData, item_ids: np.ndarray, missing: list[int],
              occurrences: list[tuple[np.ndarray, np.ndarray, str]]) -> DataError:
    """The error for untitled items, naming where the first one is used. `occurrences` are
    (internal item ids, their lines, file), files in reading order."""
    first, where = missing[0], ""
    for items, lines, source in occurrences:
        hits = np.flatnonzero(np.isin(items, missing))
        if hits.size:
            hit = hits[np.argmin(lines[hits])]
            first, where = items[hit], f" (used in {source} line {lines[hit]})"
            break
    item = str(item_ids[first])
    more = f" ({len(missing) - 1} more items have no title)" if len(missing) > 1 else ""
    row = raw.title_row.format(item=item)
    return DataError(f"{raw.titles_source}: item {item!r}{where} has no title; add a row `{row}`{more}")


def _dataset(raw: RawData, item_ids: np.ndarray, user_ids: np.ndarray, splits: dict[str, Split],
             stats: dict, options: PrepareOptions) -> PreparedDataset:
    item_ids, user_ids = item_ids.tolist(), user_ids.tolist()
    titles = [raw.titles[item] for item in item_ids]
    empty = [name for name in SPLITS if len(splits[name]) == 0]
    if empty:
        total = sum(len(split) for split in splits.values())
        raise DataError(f"{raw.sources[0]}: too little data: the {' and '.join(empty)} "
                        f"split{'s are' if len(empty) > 1 else ' is'} empty ({total} instances in "
                        f"all); give more interactions")
    stats = {**stats, "users": len(user_ids), "items": len(item_ids), "max_len": options.max_len,
             "instances": {name: len(splits[name]) for name in SPLITS},
             "content_hash": content_hash(item_ids, titles, splits)}
    return PreparedDataset(item_ids=item_ids, titles=titles, user_ids=user_ids,
                           train=splits["train"], val=splits["val"], test=splits["test"], stats=stats)
