"""What every reader shares (docs/method.md §1 input): the in-memory form `RawData`, text-file
checks, value parsing (timestamps, ratings, id codes) and the column helpers. Every problem is a
`DataError` naming the file, the line where there is one, and the fix."""

from __future__ import annotations

import csv
import gc
import io
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from distill.errors import DataError, option_hint

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
        raise DataError(f"{path.name}: file not found")
    if path.is_dir():
        raise DataError(f"{path.name}: is a folder; give the file inside it")
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
    if not text or text.isspace():  # (not strip(): that would copy the whole text)
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


def split_rows(path: Path, sep: str, width: int | None = None,
                text: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Rows of a file without quoting (RecBole, MovieLens); every row must have `width` fields,
    by default the first row's."""
    text = read_text(path) if text is None else text
    for number, line in _lines(text):
        fields = line.split(sep)
        width = len(fields) if width is None else width
        if len(fields) != width:
            raise ragged(path, number, len(fields), width, sep)
        yield number, fields


def ragged(path: Path, line: int, got: int, want: int, sep: str, quoting: bool = False) -> DataError:
    fix = "check the separator, and quote fields that contain it" if quoting else \
        "check the separator; a field cannot contain it in this format"
    return DataError(f"{path.name} line {line}: {got} fields where {want} are expected "
                     f"(separator {sep!r}); {fix}")


SEPARATORS = (",", "\t", ";", "|")


def sniff(header: str) -> str:
    """The separator that occurs most in the header line (ties: the order of SEPARATORS)."""
    return max(SEPARATORS, key=header.count)


def _column_index(path: Path, header: list[str], columns: dict[str, str]) -> list[int]:
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path.name}: no column {missing[0]!r} (columns: {', '.join(header)}); "
                        f"{columns[missing[0]]}")
    return [header.index(c) for c in columns]


def csv_rows(path: Path, columns: dict[str, str],
              sep: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """(line, values of `columns`) for each data row of a CSV with a header line.

    `columns` maps each needed column to the fix when it is missing (which option renames it).
    """
    text = read_text(path)
    sep = sep or sniff(text.lstrip().split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = [name.strip() for name in next(row for row in reader if row)]
        index = _column_index(path, header, columns)
        rows = 0
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ragged(path, reader.line_num, len(row), len(header), sep, quoting=True)
            rows += 1
            yield reader.line_num, [row[k].strip() for k in index]
    except csv.Error as exc:
        raise DataError(f"{path.name} line {reader.line_num}: {exc}; check the quoting") from None
    if rows == 0:
        raise DataError(f"{path.name}: has a header but no data rows")


def csv_columns(path: Path, columns: dict[str, str],
                sep: str | None = None) -> tuple[np.ndarray, list[list[str]]]:
    """The data rows of a CSV with a header line, by column: (line of each row, one list of
    values per entry of `columns`), read like `csv_rows`.

    A file without quote characters (most interaction logs) is split in bulk (`_plain_columns`,
    10x faster than `csv.reader` row by row on 1M rows); others go through `csv.reader`."""
    text = read_text(path)
    sep = sep or sniff(text.lstrip().split("\n", 1)[0])
    with paused_gc():
        if '"' not in text and text.count("\r") == text.count("\r\n") and sep.isascii():
            lines, values = _plain_columns(path, text, columns, sep)
        else:
            numbers: list[int] = []
            values = [[] for _ in columns]
            for line, row in csv_rows(path, columns, sep):
                numbers.append(line)
                for column, value in zip(values, row):
                    column.append(value)
            lines = np.array(numbers, dtype=np.int64)
    if len(lines) == 0:
        raise DataError(f"{path.name}: has a header but no data rows")
    return lines, values


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: building millions of small lists (rows) would
    otherwise trigger collections that rescan all of them, which took 80% of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _plain_columns(path: Path, text: str, columns: dict[str, str],
                   sep: str) -> tuple[np.ndarray, list[list[str]]]:
    """`csv_columns` for text without quotes or bare carriage returns, where each line is its
    row and its fields are split at `sep` (what `csv.reader` does with such text). The field
    count of every line is checked on the bytes at once; then the whole text is split in one
    call, without a list per row."""
    header_start = len(text) - len(text.lstrip())
    header_end = text.find("\n", header_start)
    header_end = len(text) if header_end < 0 else header_end
    header = [name.strip() for name in text[header_start:header_end].split(sep)]
    index = _column_index(path, header, columns)
    width = len(header)
    first_line = text.count("\n", 0, header_end) + 2          # line number of the first data line
    body = text[header_end + 1:].rstrip("\r\n")              # trailing blank lines are no rows
    if not body:
        return np.empty(0, dtype=np.int64), [[] for _ in index]
    data = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    newline = np.flatnonzero(data == 10)
    rows = len(newline) + 1
    seps = np.bincount(np.searchsorted(newline, np.flatnonzero(data == ord(sep))), minlength=rows)
    length = np.diff(np.r_[-1, newline, len(data)]) - 1
    blank = (length == 0) | ((length == 1) & (data[np.r_[0, newline + 1]] == 13))
    lines = np.arange(first_line, first_line + rows, dtype=np.int64)
    bad = np.flatnonzero((seps != width - 1) & ~blank)
    if bad.size:
        raise ragged(path, int(lines[bad[0]]), int(seps[bad[0]]) + 1, width, sep, quoting=True)
    del data, newline, seps
    if blank.any():  # empty lines inside: split line by line, leaving them out
        kept = [line.split(sep) for line, empty in zip(body.split("\n"), blank.tolist()) if not empty]
        by_column = list(zip(*kept))
        del kept
        return lines[~blank], [list(map(str.strip, by_column[k])) for k in index]
    flat = body.replace("\n", sep).split(sep)
    del body
    return lines, [list(map(str.strip, flat[k::width])) for k in index]


# ---------------------------------------------------------------------------------------------
# Values


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_timestamp(value: str, path: Path, line: int) -> int:
    """Integer seconds; float timestamps (RecBole writes `881250949.0`) and ISO dates also read.
    Timestamps are stored as int64: a value outside its range, or inf/nan, is refused."""
    try:
        number = int(value)
    except ValueError:
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, float):
        if not math.isfinite(number):
            raise DataError(f"{path.name} line {line}: timestamp {value!r} is not a finite number; "
                            f"timestamps must be integers (e.g. Unix seconds) or ISO dates")
        number = int(number)
    if number is not None:
        if not INT64_MIN <= number <= INT64_MAX:
            raise DataError(f"{path.name} line {line}: timestamp {value.strip()[:40]!r} is out of range "
                            f"(it must fit in 64 bits, |t| < 9.2e18); use Unix seconds or ISO dates")
        return number
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
        number = float(value)
    except ValueError:
        raise DataError(f"{path.name} line {line}: rating {value!r} is not a number") from None
    if not math.isfinite(number):
        raise DataError(f"{path.name} line {line}: rating {value!r} is not a finite number")
    return number


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


class Collector:
    """Accumulates interaction fields as text, line by line; converts them in bulk at the end."""

    def __init__(self, path: Path, with_ratings: bool):
        self.path = path
        self.users: list[str] = []
        self.items: list[str] = []
        self.times: list[str] = []
        self.ratings: list[str] | None = [] if with_ratings else None
        self.lines: list[int] = []            # rows added one by one
        self.blocks: list[np.ndarray] = []    # then rows added by whole columns

    def extend(self, lines: np.ndarray, users: list[str], items: list[str], times: list[str],
               ratings: list[str] | None = None) -> None:
        """Add whole columns at once (`csv_columns`)."""
        self.users.extend(users)
        self.items.extend(items)
        self.times.extend(times)
        if self.ratings is not None:
            self.ratings.extend(ratings)
        self.flush()
        self.blocks.append(np.asarray(lines, dtype=np.int64))

    def add(self, line: int, user: str, item: str, time: str, rating: str | None = None) -> None:
        self.users.append(user)
        self.items.append(item)
        self.times.append(time)
        if self.ratings is not None:
            self.ratings.append(rating)
        self.lines.append(line)

    def flush(self) -> None:
        if self.lines:
            self.blocks.append(np.array(self.lines, dtype=np.int64))
            self.lines = []

    def line_numbers(self) -> np.ndarray:
        """The line of every row added, in order."""
        self.flush()
        if len(self.blocks) != 1:
            self.blocks = [np.concatenate(self.blocks) if self.blocks else np.empty(0, dtype=np.int64)]
        return self.blocks[0]

    def _numbers(self, values: list[str], dtype: type, parse) -> np.ndarray:
        """Fast path for plain numbers; else `parse` each value, which reads other forms or
        raises naming the line."""
        try:
            numbers = np.fromiter(map(dtype, values), dtype=dtype, count=len(values))
        except (ValueError, OverflowError):
            pass
        else:
            if dtype is int or np.isfinite(numbers).all():
                return numbers
        return np.array([parse(v, self.path, line) for v, line in zip(values, self.line_numbers().tolist())],
                        dtype=dtype)

    def raw_data(self, titles: dict[str, str], titles_source: Path, title_row: str) -> RawData:
        lines = self.line_numbers()
        if not len(lines):
            raise DataError(f"{self.path.name}: has a header but no data rows")
        for values in (self.users, self.items):
            if "" in values:
                raise DataError(f"{self.path.name} line {lines[values.index('')]}: empty user or "
                                f"item id; every interaction needs both")
        users, user_names = factorize(self.users)
        items, item_names = factorize(self.items)
        interactions = Interactions(
            users=users, items=items, times=self._numbers(self.times, int, parse_timestamp),
            ratings=None if self.ratings is None else self._numbers(self.ratings, float, parse_rating),
            lines=lines, source=self.path.name)
        return RawData(item_names=item_names, user_names=user_names,
                       titles=titles, titles_source=titles_source.name, title_row=title_row,
                       sources=[self.path.name, titles_source.name], interactions=interactions)


def renamable(options: PrepareOptions, *fields: str) -> dict[str, str]:
    """`csv_rows` columns named by the option fields `fields` (e.g. "user_col"), each with the
    fix: the option that renames it."""
    return {getattr(options, field): rename_fix(field) for field in fields}


def rename_fix(field: str) -> str:
    """The fix for a column (or RecBole field) of another name: the option `field` that names it."""
    hint = option_hint(field)
    if hint.startswith("--"):
        return f"rename the column, or give its name with {hint} (option {field})"
    return f"rename the column, or give its name in {hint}"


def fixed_columns(names: Sequence[str], layout: str) -> dict[str, str]:
    """`csv_rows` columns whose names a format fixes."""
    return {name: f"{layout} has columns {','.join(names)}" for name in names}


def titles_from_csv(path: Path, columns: dict[str, str], sep: str | None = None) -> dict[str, str]:
    titles: dict[str, str] = {}
    for line, (item, title) in csv_rows(path, columns, sep):
        add_title(titles, item, title, path, line)
    return titles


def add_title(titles: dict[str, str], item: str, title: str, path: Path, line: int) -> None:
    title = title.strip()
    if item in titles and titles[item] != title:
        raise DataError(f"{path.name} line {line}: item {item!r} appears again with another title "
                        f"({titles[item]!r}, then {title!r}); keep one row per item")
    titles[item] = title


def require_file(path: Path, fmt: str, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{path.name}: file not found; the {fmt} format needs {what}")
    if path.is_dir():
        raise DataError(f"{path.name}: is a folder; the {fmt} format needs {what} here")
    return path
