"""Readers for each input format; all return the same in-memory form, `RawData` (SPEC §1 input).

A reader parses files and checks what it can see line by line (field counts, ids, timestamps);
ids, sequences and the split are built in `distill.data.prepare`. Formats:

- `csv`: an interactions CSV/TSV (user, item, timestamp) plus an items file (item, title).
- `recbole`: RecBole atomic files, `NAME.inter` + `NAME.item` or `NAME.text`, or sequence files
  already split into `NAME.train.inter`, `NAME.valid.inter`, `NAME.test.inter`.
- `movielens`: ML-100k (`u.data` + `u.item`), ML-1M/10M (`ratings.dat` + `movies.dat`) and
  ML-20M/25M (`ratings.csv` + `movies.csv`).
- `reference`: the DLLM2Rec reference code's `train_data.csv`, `val_data.csv`, `test_data.csv`
  and `data_statis.csv`, with internal ids and the split already made.

Every problem is a `DataError` naming the file, the line where there is one, and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from distill.errors import DataError

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions


@dataclass
class Interactions:
    """Interactions in file order. Users and items are codes into `RawData.user_names` and
    `RawData.item_names` (the raw ids as str): sorting 10M strings takes numpy 20 s, sorting the
    few distinct ones takes nothing."""

    users: np.ndarray          # int64 code of the raw user id
    items: np.ndarray          # int64 code of the raw item id
    times: np.ndarray          # int64
    ratings: np.ndarray | None  # float64; read only when a rating filter asks for it
    lines: np.ndarray          # int64 line of each interaction in `source`, for error messages
    source: str                # file name


@dataclass
class GivenSplit:
    """One split's instances as the source cut them; histories concatenated (oldest first)."""

    history: np.ndarray        # int64 item codes of every instance's full history, one after another
    lengths: np.ndarray        # int64 true history length of each instance (>= 1)
    next: np.ndarray           # int64 item code of the target
    users: np.ndarray | None   # int64 user codes; None: each instance is its own user
    times: np.ndarray | None   # int64; None: the row order is the time
    lines: np.ndarray          # int64 line of each instance in `source`
    source: str


@dataclass
class RawData:
    """What a reader returns: interactions or given splits, the raw ids, and item titles."""

    item_names: np.ndarray             # str raw item id of each item code
    user_names: np.ndarray | None      # str raw user id of each user code; None: no users
    titles: dict[str, str]             # raw item id -> title
    titles_source: str | None          # file the titles came from; None where titles are optional
    title_row: str                     # how a missing title's row looks in that file, for the fix
    sources: list[str]                 # names of the files read, for stats.json
    interactions: Interactions | None = None
    given: dict[str, GivenSplit] | None = None   # train/val/test when the source is pre-split


# ---------------------------------------------------------------------------------------------
# Text files: refuse what is not text before parsing anything


PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ARCHIVES = {b"\x1f\x8b": "a gzip file", b"PK\x03\x04": "a zip archive (or a spreadsheet)"}
# Share of control characters (other than tab, newline, CR, form feed) above which a file that
# decodes is still not text: Latin-1 decodes any bytes at all.
MAX_CONTROL_SHARE = 0.01


def read_text(path: Path) -> str:
    """The file's text: UTF-8, else Latin-1 (MovieLens); pickles and binary files are refused."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give the file inside it")
    data = path.read_bytes()
    name = path.name
    if data[:2] in PICKLE_PROTOCOLS:
        raise DataError(f"{name}: is a Python pickle; pickles are refused for safety; export as CSV")
    for magic, kind in ARCHIVES.items():
        if data.startswith(magic):
            raise DataError(f"{name}: is {kind}, not a text file; unpack or export it as CSV first")
    if b"\x00" in data or _control_share(data[: 1 << 20]) > MAX_CONTROL_SHARE:
        raise DataError(f"{name}: does not look like a text file (binary bytes); give CSV or TSV text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if not text.strip():
        raise DataError(f"{name}: is empty; give a file with a header line and data rows")
    return text


def _control_share(sample: bytes) -> float:
    codes = np.frombuffer(sample, dtype=np.uint8)
    if codes.size == 0:
        return 0.0
    control = ((codes < 32) & ~np.isin(codes, (9, 10, 12, 13))) | (codes == 127)
    return float(control.mean())


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) for non-blank lines; splits on newlines only, because
    `str.splitlines` also splits on characters such as \\x85 that Latin-1 titles contain."""
    for number, line in enumerate(io.StringIO(text, newline="\n"), start=1):
        line = line.rstrip("\r\n")
        if line.strip():
            yield number, line


def _split_rows(path: Path, sep: str, width: int | None = None,
                text: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a file without quoting (RecBole, MovieLens); every row must have `width` fields,
    by default the first row's."""
    text = read_text(path) if text is None else text
    for number, line in _lines(text):
        fields = line.split(sep)
        width = len(fields) if width is None else width
        if len(fields) != width:
            raise _ragged(path, number, len(fields), width, sep)
        yield number, fields


def _ragged(path: Path, line: int, got: int, want: int, sep: str, quoting: bool = False) -> DataError:
    fix = "check the separator, and quote fields that contain it" if quoting else \
        "check the separator; a field cannot contain it in this format"
    return DataError(f"{path.name} line {line}: {got} fields where {want} are expected "
                     f"(separator {sep!r}); {fix}")


SEPARATORS = (",", "\t", ";", "|")


def _sniff(header: str) -> str:
    """The separator that occurs most in the header line (ties: the order of SEPARATORS)."""
    return max(SEPARATORS, key=header.count)


def _csv_rows(path: Path, columns: dict[str, str],
              sep: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line, values of `columns`) for each data row of a CSV with a header line.

    `columns` maps each needed column to the fix when it is missing (which option renames it).
    """
    text = read_text(path)
    sep = sep or _sniff(text.lstrip().split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = [name.strip() for name in next(row for row in reader if row)]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataError(f"{path.name}: no column {missing[0]!r} (columns: {', '.join(header)}); "
                            f"{columns[missing[0]]}")
        index = [header.index(c) for c in columns]
        rows = 0
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise _ragged(path, reader.line_num, len(row), len(header), sep, quoting=True)
            rows += 1
            yield reader.line_num, [row[k].strip() for k in index]
    except csv.Error as exc:
        raise DataError(f"{path.name} line {reader.line_num}: {exc}; check the quoting") from None
    if rows == 0:
        raise DataError(f"{path.name}: has a header but no data rows")


# ---------------------------------------------------------------------------------------------
# Values


def parse_timestamp(value: str, path: Path, line: int) -> int:
    """Integer seconds; float timestamps (RecBole writes `881250949.0`) and ISO dates also read."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
        if math.isfinite(number):
            return int(number)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DataError(f"{path.name} line {line}: timestamp {value!r} is not a number; timestamps "
                        f"must be integers (e.g. Unix seconds) or ISO dates") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def parse_rating(value: str, path: Path, line: int) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path.name} line {line}: rating {value!r} is not a number") from None


class Codes:
    """Raw id -> code, in order of first appearance (for sources read row by row)."""

    def __init__(self):
        self.index: dict[str, int] = {}

    def __call__(self, raw: str) -> int:
        return self.index.setdefault(raw, len(self.index))

    def names(self) -> np.ndarray:
        return np.array(list(self.index), dtype=str)


def factorize(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value, distinct values). The per-element work runs in C, which matters for
    ML-10M's 10M rows; integer ids (most datasets) go through numpy, twice as fast again."""
    try:
        numbers = np.fromiter(map(int, values), dtype=np.int64, count=len(values))
    except (ValueError, OverflowError):
        numbers = None
    if numbers is not None:
        distinct, codes = np.unique(numbers, return_inverse=True)
        names = distinct.astype(str)
        # int() also reads "007" or "+7", whose text is longer than the number's: equal total
        # lengths mean every value is exactly its number's text, so the numbers can stand for it.
        if sum(map(len, values)) == int(np.char.str_len(names) @ np.bincount(codes)):
            return codes.reshape(-1), names
    index = dict.fromkeys(values)
    for code, value in enumerate(index):
        index[value] = code
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
    return codes, np.array(list(index), dtype=str)


class _Collector:
    """Accumulates interaction fields as text, line by line; converts them in bulk at the end."""

    def __init__(self, path: Path, with_ratings: bool):
        self.path = path
        self.users: list[str] = []
        self.items: list[str] = []
        self.times: list[str] = []
        self.ratings: list[str] | None = [] if with_ratings else None
        self.lines: list[int] = []

    def add(self, line: int, user: str, item: str, time: str, rating: str | None = None) -> None:
        self.users.append(user)
        self.items.append(item)
        self.times.append(time)
        if self.ratings is not None:
            self.ratings.append(rating)
        self.lines.append(line)

    def _numbers(self, values: list[str], dtype: type, parse) -> np.ndarray:
        """Fast path for plain numbers; else `parse` each value, which reads other forms or
        raises naming the line."""
        try:
            return np.fromiter(map(dtype, values), dtype=dtype, count=len(values))
        except (ValueError, OverflowError):
            return np.array([parse(v, self.path, line) for v, line in zip(values, self.lines)],
                            dtype=dtype)

    def raw_data(self, titles: dict[str, str], titles_source: Path, title_row: str) -> RawData:
        if not self.lines:
            raise DataError(f"{self.path.name}: has a header but no data rows")
        for values in (self.users, self.items):
            if "" in values:
                raise DataError(f"{self.path.name} line {self.lines[values.index('')]}: empty user or "
                                f"item id; every interaction needs both")
        users, user_names = factorize(self.users)
        items, item_names = factorize(self.items)
        interactions = Interactions(
            users=users, items=items, times=self._numbers(self.times, int, parse_timestamp),
            ratings=None if self.ratings is None else self._numbers(self.ratings, float, parse_rating),
            lines=np.array(self.lines, dtype=np.int64), source=self.path.name)
        return RawData(item_names=item_names, user_names=user_names,
                       titles=titles, titles_source=titles_source.name, title_row=title_row,
                       sources=[self.path.name, titles_source.name], interactions=interactions)


def _renamable(options: PrepareOptions, *fields: str) -> dict[str, str]:
    """`_csv_rows` columns named by the option fields `fields` (e.g. "user_col"), each with the
    fix: the option that renames it."""
    return {getattr(options, field): _rename_fix(field) for field in fields}


def _rename_fix(field: str) -> str:
    return f"rename the column, or give its name with --{field.replace('_', '-')} (option {field})"


def _fixed(names: Sequence[str], layout: str) -> dict[str, str]:
    """`_csv_rows` columns whose names a format fixes."""
    return {name: f"{layout} has columns {','.join(names)}" for name in names}


def _titles_from_csv(path: Path, columns: dict[str, str], sep: str | None = None) -> dict[str, str]:
    titles: dict[str, str] = {}
    for line, (item, title) in _csv_rows(path, columns, sep):
        _add_title(titles, item, title, path, line)
    return titles


def _add_title(titles: dict[str, str], item: str, title: str, path: Path, line: int) -> None:
    title = title.strip()
    if item in titles and titles[item] != title:
        raise DataError(f"{path.name} line {line}: item {item!r} appears again with another title "
                        f"({titles[item]!r}, then {title!r}); keep one row per item")
    titles[item] = title


def _require_file(path: Path, fmt: str, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; the {fmt} format needs {what} here")
    return path


# ---------------------------------------------------------------------------------------------
# csv


def read_csv(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """Interactions CSV/TSV plus an items file; titles may contain quoted separators."""
    _require_file(input, "csv", "the interactions file")
    if items is None:
        raise DataError(f"{input.name}: the csv format needs an items file with "
                        f"{options.item_col},{options.title_col} columns (--items)")
    columns = _renamable(options, "user_col", "item_col", "time_col")
    if options.min_rating is not None:
        columns |= _renamable(options, "rating_col")
    collect = _Collector(input, with_ratings=options.min_rating is not None)
    for line, values in _csv_rows(input, columns, options.sep):
        collect.add(line, *values)
    titles = _titles_from_csv(_require_file(items, "csv", "the items file"),
                              _renamable(options, "item_col", "title_col"), options.sep)
    return collect.raw_data(titles, items, "{item},<title>")


# ---------------------------------------------------------------------------------------------
# recbole

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
    given = {name: _recbole_sequences(_require_file(path, "recbole", "sequence files"), options,
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
    _require_file(input, "recbole", "a NAME.inter file")
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
                        f"{_rename_fix(option)}")
    return header.index(name)


def _data_rows(path: Path, header: list[str], text: str) -> Iterator[tuple[int, list[str]]]:
    rows = _split_rows(path, "\t", len(header), text)
    next(rows)  # the header line
    return rows


def _recbole_interactions(path: Path, options: PrepareOptions) -> _Collector:
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
    collect = _Collector(path, with_ratings)
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
    _require_file(path, "recbole", "a NAME.item or NAME.text file")
    header, text = _recbole_header(path)
    preferred = [options.title_col, "title", "movie_title"]
    preferred += [f for f in header if "title" in f.lower()] + ["text"]
    title_name = next((f for f in preferred if f in header), None)
    if title_name is None:
        raise DataError(f"{path.name}: no title field (fields: {', '.join(header)}); add a "
                        f"title:token_seq field, or {_rename_fix('title_col')}")
    item_at = _field(path, header, options.item_col, "item_col")
    title_at = header.index(title_name)
    titles: dict[str, str] = {}
    for line, row in _data_rows(path, header, text):
        _add_title(titles, row[item_at].strip(), row[title_at], path, line)
    return titles


# ---------------------------------------------------------------------------------------------
# movielens

MOVIELENS_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}


def read_movielens(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """ML-100k, ML-1M/10M or ML-20M/25M: the dataset directory, or its ratings file."""
    ratings = _movielens_ratings(input)
    items = _require_file(items or ratings.parent / MOVIELENS_FILES[ratings.name],
                          "movielens", "the movies file")
    collect = _Collector(ratings, with_ratings=options.min_rating is not None)
    titles: dict[str, str] = {}
    if ratings.name == "ratings.csv":  # ML-20M and later: CSV with a header and quoted titles
        columns = _fixed(("userId", "movieId", "rating", "timestamp"), "a MovieLens ratings.csv")
        for line, (user, item, rating, time) in _csv_rows(ratings, columns, ","):
            collect.add(line, user, item, time, rating)
        titles = _titles_from_csv(items, _fixed(("movieId", "title"), "a MovieLens movies.csv"), ",")
        return collect.raw_data(titles, items, "{item},<title>,<genres>")
    sep, item_sep, row = (("\t", "|", "{item}|<title>|...") if ratings.name == "u.data"
                          else ("::", "::", "{item}::<title>::<genres>"))
    for line, (user, item, rating, time) in _split_rows(ratings, sep, 4):
        collect.add(line, user, item, time, rating)
    for line, fields in _split_rows(items, item_sep):
        if len(fields) < 2:
            raise _ragged(items, line, len(fields), 2, item_sep)
        _add_title(titles, fields[0].strip(), fields[1], items, line)
    return collect.raw_data(titles, items, row)


def _movielens_ratings(input: Path) -> Path:
    if input.is_dir():
        for ratings in MOVIELENS_FILES:
            if (input / ratings).is_file():
                return input / ratings
        raise DataError(f"{input}: no MovieLens ratings file ({', '.join(MOVIELENS_FILES)}); "
                        f"give the dataset directory or its ratings file")
    _require_file(input, "movielens", "u.data, ratings.dat or ratings.csv")
    if input.name not in MOVIELENS_FILES:
        raise DataError(f"{input.name}: not a MovieLens ratings file name "
                        f"({', '.join(MOVIELENS_FILES)}); rename it, or use the csv format")
    return input


# ---------------------------------------------------------------------------------------------
# reference

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
        raise DataError(f"{input}: not found; give the directory with the reference CSVs")
    folder = input if input.is_dir() else input.parent
    stats = folder / REFERENCE_STATS
    missing = [name for name in (*REFERENCE_SPLITS.values(), REFERENCE_STATS)
               if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}; the reference format is a "
                        f"directory with {', '.join(REFERENCE_SPLITS.values())} and {REFERENCE_STATS}")
    columns = _fixed(("item_num",), "the reference format's data_statis.csv")
    line, (item_num,) = next(_csv_rows(stats, columns))
    num_items = _int(item_num, stats, line, "item_num")
    item_names = np.arange(num_items).astype(str)
    given = {name: _reference_split(folder / file, num_items) for name, file in REFERENCE_SPLITS.items()}
    sources = [*REFERENCE_SPLITS.values(), REFERENCE_STATS]
    if items is None:
        titles = {item: f"item {item}" for item in item_names.tolist()}
        return RawData(item_names=item_names, user_names=None, titles=titles, titles_source=None,
                       title_row="", sources=sources, given=given)
    titles = _titles_from_csv(_require_file(items, "reference", "the items file"),
                              _renamable(options, "item_col", "title_col"), options.sep)
    return RawData(item_names=item_names, user_names=None, titles=titles, titles_source=items.name,
                   title_row="{item},<title>", sources=[*sources, items.name], given=given)


def _reference_split(path: Path, num_items: int) -> GivenSplit:
    history: list[int] = []
    lengths, targets, lines = [], [], []
    columns = _fixed(("seq", "len_seq", "next"), "the reference format")
    for line, (seq, len_seq, target) in _csv_rows(path, columns):
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


READERS = {"csv": read_csv, "recbole": read_recbole, "movielens": read_movielens,
           "reference": read_reference}
