"""`movielens`: ML-100k (`u.data` + `u.item`), ML-1M/10M (`ratings.dat` + `movies.dat`) and
ML-20M/25M (`ratings.csv` + `movies.csv`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distill.data.readers.common import (Collector, RawData, add_title, csv_columns, fixed_columns,
                                        paused_gc, ragged, require_file, split_rows, titles_from_csv)
from distill.errors import DataError, give_hint

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions

MOVIELENS_FILES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}


def read_movielens(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """ML-100k, ML-1M/10M or ML-20M/25M: the dataset directory, or its ratings file."""
    ratings = _movielens_ratings(input)
    items = require_file(items or ratings.parent / MOVIELENS_FILES[ratings.name],
                          "movielens", "the movies file")
    collect = Collector(ratings, with_ratings=options.min_rating is not None)
    titles: dict[str, str] = {}
    if ratings.name == "ratings.csv":  # ML-20M and later: CSV with a header and quoted titles
        columns = fixed_columns(("userId", "movieId", "rating", "timestamp"), "a MovieLens ratings.csv")
        lines, (user, item, rating, time) = csv_columns(ratings, columns, ",")
        collect.extend(lines, user, item, time, rating)
        titles = titles_from_csv(items, fixed_columns(("movieId", "title"), "a MovieLens movies.csv"), ",")
        return collect.raw_data(titles, items, "{item},<title>,<genres>")
    sep, item_sep, row = (("\t", "|", "{item}|<title>|...") if ratings.name == "u.data"
                          else ("::", "::", "{item}::<title>::<genres>"))
    with paused_gc():
        for line, (user, item, rating, time) in split_rows(ratings, sep, 4):
            collect.add(line, user, item, time, rating)
    for line, fields in split_rows(items, item_sep):
        if len(fields) < 2:
            raise ragged(items, line, len(fields), 2, item_sep)
        add_title(titles, fields[0].strip(), fields[1], items, line)
    return collect.raw_data(titles, items, row)


def _movielens_ratings(input: Path) -> Path:
    if input.is_dir():
        for ratings in MOVIELENS_FILES:
            if (input / ratings).is_file():
                return input / ratings
        found = ", ".join(sorted(p.name for p in input.iterdir() if not p.name.startswith("."))) or "none"
        raise DataError(f"no MovieLens ratings file ({', '.join(MOVIELENS_FILES)}) among the files "
                        f"given ({found}); "
                        + give_hint("give the dataset folder or its ratings file",
                                    "upload the ratings file and its titles file"))
    require_file(input, "movielens", "u.data, ratings.dat or ratings.csv")
    if input.name not in MOVIELENS_FILES:
        raise DataError(f"{input.name}: not a MovieLens ratings file name "
                        f"({', '.join(MOVIELENS_FILES)}); rename it, or use the csv format")
    return input
