"""`csv`: an interactions CSV/TSV (user, item, timestamp) plus an items file (item, title).

Given a folder, the reader takes its two text files (.csv, .tsv, .txt, .dat) and tells them
apart by their header lines: the items file is the one with both the item column and the title
column (`item_col`, `title_col`), the interactions file the other."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

from distill.data.readers.common import (Collector, RawData, csv_columns, renamable, require_file, sniff,
                                        titles_from_csv)
from distill.errors import DataError, give_hint, option_hint

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions

TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat")
HEADER_BYTES = 1 << 16


def read_csv(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """Interactions CSV/TSV plus an items file; titles may contain quoted separators."""
    if input.is_dir():
        input, items = csv_pair(input, items, options)
    require_file(input, "csv", "the interactions file")
    if items is None:
        raise DataError(f"{input.name}: the csv format needs an items file with "
                        f"{options.item_col},{options.title_col} columns; "
                        + give_hint("give it with --items", "upload the items file too"))
    columns = renamable(options, "user_col", "item_col", "time_col")
    if options.min_rating is not None:
        columns |= renamable(options, "rating_col")
    collect = Collector(input, with_ratings=options.min_rating is not None)
    lines, values = csv_columns(input, columns, options.sep)
    collect.extend(lines, *values)
    titles = titles_from_csv(require_file(items, "csv", "the items file"),
                              renamable(options, "item_col", "title_col"), options.sep)
    return collect.raw_data(titles, items, "{item},<title>")


def text_files(folder: Path) -> list[Path]:
    """The folder's text data files (hidden files left out), by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in TEXT_SUFFIXES)


def csv_pair(folder: Path, items: Path | None, options: PrepareOptions) -> tuple[Path, Path]:
    """(interactions file, items file) of a folder holding exactly those two text files."""
    files = [p for p in text_files(folder) if items is None or p.resolve() != Path(items).resolve()]
    names = ", ".join(p.name for p in files) or "none"
    if items is not None:
        if len(files) != 1:
            raise DataError(f"the csv format takes one interactions file beside the items file "
                            f"{Path(items).name}; found {names}")
        return files[0], Path(items)
    if len(files) != 2:
        raise DataError(f"the csv format takes two files, the interactions and the items file "
                        f"({', '.join(TEXT_SUFFIXES)}); found {names}; "
                        + give_hint("give them with --input FILE --items FILE",
                                    "upload exactly those two files"))
    has_titles = [_has_columns(p, (options.item_col, options.title_col), options.sep) for p in files]
    if has_titles.count(True) != 1:
        which = "both have" if all(has_titles) else "neither has"
        raise DataError(f"cannot tell the items file from the interactions file: {files[0].name} and "
                        f"{files[1].name} {which} the columns {options.item_col!r} and "
                        f"{options.title_col!r}; the items file must have both and the interactions "
                        f"file not {options.title_col!r} (rename the columns, or give their names "
                        f"with {option_hint('item_col')} and {option_hint('title_col')})")
    items = files[has_titles.index(True)]
    return files[1 - has_titles.index(True)], items


def _has_columns(path: Path, columns: tuple[str, ...], sep: str | None) -> bool:
    header = header_fields(path, sep)
    return all(c in header for c in columns)


def header_fields(path: Path, sep: str | None = None) -> list[str]:
    """The column names on a CSV file's first non-blank line."""
    with open(path, "rb") as fh:  # the header only: the file itself is read (and checked) later
        head = fh.read(HEADER_BYTES).decode("utf-8-sig", errors="replace")
    first = head.lstrip().split("\n", 1)[0].rstrip("\r")
    try:
        row = next(csv.reader(io.StringIO(first), delimiter=sep or sniff(first)), [])
    except csv.Error:
        return []
    return [name.strip() for name in row]
