"""`recbole`: RecBole atomic files, `NAME.inter` + `NAME.item` or `NAME.text`, or sequence files
already split into `NAME.train.inter`, `NAME.valid.inter`, `NAME.test.inter`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from distill.data.readers.common import (Codes, Collector, GivenSplit, RawData, add_title, parse_timestamp,
                                        read_text, rename_fix, require_file, split_rows)
from distill.errors import DataError

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions

RECBOLE_SPLITS = {"train": "train", "val": "valid", "test": "test"}
LIST_SUFFIX = "_list"  # RecBole's name for a sequence field: item_id -> item_id_list


def read_recbole(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """RecBole atomic files: `NAME.inter`, or the pre-split `NAME.{train,valid,test}.inter`."""
    inter, split = _recbole_inter(input)
    base = inter.name[: -len(f".{split}.inter")] if split else inter.stem
    items = items or _recbole_items(inter.parent, base)
    titles = _recbole_titles(items, options)
    row = "{item}<TAB><title>"
    if not split:
        return _recbole_interactions(inter, options).raw_data(titles, items, row)
    files = [inter.parent / f"{base}.{suffix}.inter" for suffix in RECBOLE_SPLITS.values()]
    item_codes, user_codes = Codes(), Codes()
    given = {name: _recbole_sequences(require_file(path, "recbole", "sequence files"), options,
                                      item_codes, user_codes)
             for name, path in zip(RECBOLE_SPLITS, files)}
    return RawData(item_names=item_codes.names(), user_names=user_codes.names(), titles=titles,
                   titles_source=items.name, title_row=row,
                   sources=[p.name for p in files] + [items.name], given=given)


def _recbole_inter(input: Path) -> tuple[Path, str | None]:
    """The interaction file to read and, for pre-split files, which split it is."""
    if input.is_dir():
        trains = sorted(input.glob("*.train.inter"))
        candidates = trains or sorted(input.glob("*.inter"))
        if len(candidates) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise DataError(f"{input}: expected one RecBole NAME.inter (or NAME.train.inter) file, "
                            f"found {found}; give the file itself as --input")
        input = candidates[0]
    require_file(input, "recbole", "a NAME.inter file")
    for suffix in RECBOLE_SPLITS.values():
        if input.name.endswith(f".{suffix}.inter"):
            return input, suffix
    return input, None


def _recbole_items(folder: Path, base: str) -> Path:
    for suffix in (".item", ".text"):
        if (folder / f"{base}{suffix}").is_file():
            return folder / f"{base}{suffix}"
    raise DataError(f"{base}.inter: no titles; put {base}.item (a field containing 'title') or "
                    f"{base}.text next to it, or give the titles file with --items")


def _recbole_header(path: Path) -> tuple[list[str], str]:
    """Field names without their RecBole types (`item_id:token` -> `item_id`), and the text."""
    text = read_text(path)
    header = text.lstrip().split("\n", 1)[0].rstrip("\r")
    return [field.split(":", 1)[0].strip() for field in header.split("\t")], text


def _field(path: Path, header: list[str], name: str, option: str) -> int:
    """Position of field `name`; `option` is the option field that sets the name."""
    if name not in header:
        raise DataError(f"{path.name}: no field {name!r} (fields: {', '.join(header)}); "
                        f"{rename_fix(option)}")
    return header.index(name)


def _data_rows(path: Path, header: list[str], text: str) -> Iterator[tuple[int, list[str]]]:
    rows = split_rows(path, "\t", len(header), text)
    next(rows)  # the header line
    return rows


def _recbole_interactions(path: Path, options: PrepareOptions) -> Collector:
    header, text = _recbole_header(path)
    item_field = options.item_col
    if item_field + LIST_SUFFIX in header:
        raise DataError(f"{path.name}: holds sequences ({item_field}{LIST_SUFFIX}) but no split; "
                        f"give NAME.train.inter with NAME.valid.inter and NAME.test.inter beside it")
    options_fields = ["user_col", "item_col", "time_col"]
    with_ratings = options.min_rating is not None
    if with_ratings:
        options_fields.append("rating_col")
    fields = [_field(path, header, getattr(options, f), f) for f in options_fields]
    collect = Collector(path, with_ratings)
    for line, row in _data_rows(path, header, text):
        collect.add(line, *(row[k].strip() for k in fields))
    return collect


def _recbole_sequences(path: Path, options: PrepareOptions, item_codes: Codes,
                       user_codes: Codes) -> GivenSplit:
    """`item_id_list` (space-separated, oldest first) + target `item_id`. A user field
    (`user_id` or `session_id`) and a timestamp are used when present; without them each row is
    its own user and the row order is the time."""
    header, text = _recbole_header(path)
    user_field, item_field, time_field = options.user_col, options.item_col, options.time_col
    history_at = _field(path, header, item_field + LIST_SUFFIX, "item_col")
    next_at = _field(path, header, item_field, "item_col")
    user_at = next((header.index(f) for f in (user_field, "session_id") if f in header), None)
    time_at = header.index(time_field) if time_field in header else None
    history: list[int] = []
    lengths, targets, users, times, lines = [], [], [], [], []
    for line, row in _data_rows(path, header, text):
        items = row[history_at].split()
        if not items or not row[next_at].strip():
            raise DataError(f"{path.name} line {line}: empty {item_field}{LIST_SUFFIX} or "
                            f"{item_field}; every instance needs a history and a target")
        history.extend(item_codes(i) for i in items)
        lengths.append(len(items))
        targets.append(item_codes(row[next_at].strip()))
        if user_at is not None:
            users.append(user_codes(row[user_at].strip()))
        if time_at is not None:
            times.append(parse_timestamp(row[time_at], path, line))
        lines.append(line)
    if not lines:
        raise DataError(f"{path.name}: has a header but no data rows")
    return GivenSplit(history=np.array(history, dtype=np.int64), lengths=np.array(lengths, dtype=np.int64),
                      next=np.array(targets, dtype=np.int64),
                      users=np.array(users, dtype=np.int64) if user_at is not None else None,
                      times=np.array(times, dtype=np.int64) if time_at is not None else None,
                      lines=np.array(lines, dtype=np.int64), source=path.name)


def _recbole_titles(path: Path, options: PrepareOptions) -> dict[str, str]:
    """Titles from a `.item` file (the `title_col` field, `title`, `movie_title`, or any field
    with "title" in its name) or a `.text` file (`text` field)."""
    require_file(path, "recbole", "a NAME.item or NAME.text file")
    header, text = _recbole_header(path)
    preferred = [options.title_col, "title", "movie_title"]
    preferred += [f for f in header if "title" in f.lower()] + ["text"]
    title_name = next((f for f in preferred if f in header), None)
    if title_name is None:
        raise DataError(f"{path.name}: no title field (fields: {', '.join(header)}); add a "
                        f"title:token_seq field, or {rename_fix('title_col')}")
    item_at = _field(path, header, options.item_col, "item_col")
    title_at = header.index(title_name)
    titles: dict[str, str] = {}
    for line, row in _data_rows(path, header, text):
        add_title(titles, row[item_at].strip(), row[title_at], path, line)
    return titles
