"""Readers for each input format, one module each; all return the same in-memory form,
`distill.data.readers.common.RawData` (docs/method.md §1 input).

A reader parses files and checks what it can see line by line (field counts, ids, timestamps);
ids, sequences and the split are built in `distill.data.prepare`. Formats: `csv`, `recbole`,
`movielens` (ML-100k, ML-1M/10M, ML-20M/25M) and `reference` (the DLLM2Rec reference code's files).
Every problem is a `DataError` naming the file, the line where there is one, and the fix.
"""

from distill.data.readers.csv import read_csv
from distill.data.readers.movielens import read_movielens
from distill.data.readers.recbole import read_recbole
from distill.data.readers.reference import read_reference

READERS = {"csv": read_csv, "recbole": read_recbole, "movielens": read_movielens,
           "reference": read_reference}
