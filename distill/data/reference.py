"""Export a prepared dataset in the DLLM2Rec reference code's CSV layout (docs/method.md §1).

`train_data.csv`, `val_data.csv`, `test_data.csv` with columns `seq,len_seq,next` (seq written
like "[1, 2, 3, 50, 50]", right-padded with item_num) and `data_statis.csv` (`seq_size,item_num`),
so the reference code can run on exactly the data this product prepared. Reading the files back
with `prepare_dataset("reference", ...)` gives the same seq, len_seq and next arrays.
"""

from __future__ import annotations

import csv
from pathlib import Path

from distill.data.dataset import SPLITS, PreparedDataset
from distill.data.readers.reference import REFERENCE_SPLITS, REFERENCE_STATS
from distill.io import atomic_directory


def export_reference(dataset: PreparedDataset, out: str | Path) -> Path:
    """Write the reference CSVs into the directory `out`, atomically; returns `out`."""
    with atomic_directory(out) as tmp:
        for name in SPLITS:
            split = dataset.split(name)
            with open(tmp / REFERENCE_SPLITS[name], "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["seq", "len_seq", "next"])
                for seq, length, target in zip(split.seq.tolist(), split.len_seq.tolist(),
                                               split.next.tolist()):
                    writer.writerow([str(seq), length, target])
        with open(tmp / REFERENCE_STATS, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["seq_size", "item_num"])
            writer.writerow([dataset.max_len, dataset.num_items])
    return Path(out)
