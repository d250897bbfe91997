"""Readers for each input format, one module each; all return the same in-memory form,
`distill.data.readers.common.RawData` (docs/method.md §1 input).

A reader parses files and checks what it can see line by line (field counts, ids, timestamps);
ids, sequences and the split are built in `distill.data.prepare`. Formats: `csv`, `recbole`,
`movielens` (ML-100k, ML-1M/10M, ML-20M/25M) and `reference` (the DLLM2Rec reference code's files).
Every reader also takes the folder of a dataset's files under their usual names (`input=DIR,
items=None`); `detect_format` tells the format from those names.
Every problem is a `DataError` naming the file, the line where there is one, and the fix.
"""

from __future__ import annotations

from pathlib import Path

from distill.data.readers.csv import TEXT_SUFFIXES, read_csv
from distill.data.readers.movielens import MOVIELENS_FILES, read_movielens
from distill.data.readers.recbole import read_recbole
from distill.data.readers.reference import REFERENCE_SPLITS, REFERENCE_STATS, read_reference
from distill.errors import DataError, give_hint

READERS = {"csv": read_csv, "recbole": read_recbole, "movielens": read_movielens,
           "reference": read_reference}

REFERENCE_FILES = (*REFERENCE_SPLITS.values(), REFERENCE_STATS)
EXPECTED = {
    "movielens": "u.data + u.item, ratings.dat + movies.dat, or ratings.csv + movies.csv",
    "reference": " + ".join(REFERENCE_FILES),
    "recbole": "NAME.inter (or NAME.train.inter + NAME.valid.inter + NAME.test.inter) with NAME.item "
               "or NAME.text",
    "csv": f"an interactions file and an items file ({', '.join(TEXT_SUFFIXES)})",
}

__all__ = ["READERS", "detect_format", "read_csv", "read_movielens", "read_recbole", "read_reference"]


def detect_format(folder: Path) -> str:
    """The format of the dataset files in `folder`, recognised by their names as `prepare --input
    DIR` finds them: a MovieLens pair (u.data + u.item, ratings.dat + movies.dat, ratings.csv +
    movies.csv) -> "movielens"; the reference CSVs (train_data.csv, val_data.csv, test_data.csv,
    data_statis.csv) -> "reference"; any NAME.inter -> "recbole"; otherwise .csv/.tsv/.txt/.dat
    files -> "csv". A DataError lists the files found and what each format expects."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder.name}: not a folder; give the folder of the dataset's files")
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    present = set(names)
    for ratings, movies in MOVIELENS_FILES.items():
        if ratings in present and movies in present:
            return "movielens"
    reference = [name for name in REFERENCE_FILES if name in present]
    if len(reference) == len(REFERENCE_FILES):
        return "reference"
    if any(name.endswith(".inter") for name in names):
        return "recbole"
    if reference:
        missing = [name for name in REFERENCE_FILES if name not in present]
        raise DataError(f"{', '.join(reference)} {'is' if len(reference) == 1 else 'are'} reference-format "
                        f"files, but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing; "
                        + give_hint("put them in the same folder", "upload them too"))
    for ratings, movies in MOVIELENS_FILES.items():
        if ratings in present and ratings != "ratings.csv":
            raise DataError(f"{ratings} is a MovieLens ratings file, but its titles file {movies} is "
                            f"missing; " + give_hint("put it in the same folder", "upload it too"))
    if any(Path(name).suffix.lower() in TEXT_SUFFIXES for name in names):
        return "csv"
    found = ", ".join(names) if names else "no files"
    expected = "; ".join(f"{fmt}: {files}" for fmt, files in EXPECTED.items())
    raise DataError(f"no dataset files recognised (found: {found}); each format expects these file "
                    f"names: {expected}")
