"""`csv`: an interactions CSV/TSV (user, item, timestamp) plus an items file (item, title)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distill.data.readers.common import (Collector, RawData, csv_rows, renamable, require_file,
                                        titles_from_csv)
from distill.errors import DataError

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions

def read_csv(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """Interactions CSV/TSV plus an items file; titles may contain quoted separators."""
    require_file(input, "csv", "the interactions file")
    if items is None:
        raise DataError(f"{input.name}: the csv format needs an items file with "
                        f"{options.item_col},{options.title_col} columns (--items)")
    columns = renamable(options, "user_col", "item_col", "time_col")
    if options.min_rating is not None:
        columns |= renamable(options, "rating_col")
    collect = Collector(input, with_ratings=options.min_rating is not None)
    for line, values in csv_rows(input, columns, options.sep):
        collect.add(line, *values)
    titles = titles_from_csv(require_file(items, "csv", "the items file"),
                              renamable(options, "item_col", "title_col"), options.sep)
    return collect.raw_data(titles, items, "{item},<title>")
