"""Teacher artifacts: what every teacher writes and the trainer reads (docs/method.md §2.4-2.5, §4, §5).

Layout of a teacher-artifacts directory::

    teacher.json                 {"k", "dim", "num_items", "dataset_hash", "splits", "teacher",
                                  "format_version"}; "dim" is null when there are no embeddings
    ranks.safetensors            per split present (train required, val/test optional):
        {split}_ids   int64   [N_split, K]   the teacher's top-K item ids, best first
        {split}_dist  float32 [N_split, K]   their distances, ascending (smaller = more confident)
        {split}_target_dist float32 [N_split] (optional) distance from the teacher's answer to the
                      true next item: the per-instance confidence of `confidence=paper` (docs/method.md §4)
        train_ranked  uint8   [N_train] (with a budget) 1 for the instances the teacher ranked; the
                      other rows of train_ids/_dist/_target_dist are zeros and are never distilled
        train_order   int64   [N_train] (with a budget) the budget rule's order of every training row:
                      the ranked rows are its first teacher.json["budget"]["ranked"] (docs/method.md §2.6)
        val_ranked, test_ranked uint8 [N_split] (BIGRec with an eval_sample) 1 for the sampled instances the
                      teacher ranked (teacher.json["teacher"]["eval_sample"]); the others are zeros, and
                      the teacher's metrics and comparisons with it use the sampled rows only
    item_embeddings.safetensors  (optional)
        embeddings    float32 [num_items, D] teacher item embeddings for embedding distillation

Row i of a split's arrays belongs to instance i of the same split of the prepared dataset whose
`content_hash` is `dataset_hash`; the hash is what ties ranks to one item map (docs/method.md §1 warns that
the reference pipeline's files do not line up). Arrays stay numpy; the trainer converts to torch.

`distill.teacher.reference.import_reference` converts the DLLM2Rec reference code's files
(`myrank_train.txt`, `confidence_train.txt`, `all_embeddings.pt`) into this format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from distill.data.dataset import SPLITS, PreparedDataset
from distill.errors import DistillError, TeacherError
from distill.io import atomic_directory, read_json, write_json

FORMAT_VERSION = 1
META_FILE = "teacher.json"
RANKS_FILE = "ranks.safetensors"
EMBEDDINGS_FILE = "item_embeddings.safetensors"


@dataclass
class TeacherArtifacts:
    """A teacher's per-instance top-K lists and item embeddings, plus `teacher.json` as `meta`."""

    ids: dict[str, np.ndarray]
    distances: dict[str, np.ndarray]
    item_embeddings: np.ndarray | None
    meta: dict
    path: Path | None = None
    target_distances: dict[str, np.ndarray] = field(default_factory=dict)
    ranked: dict[str, np.ndarray] = field(default_factory=dict)   # split -> uint8 mask (budget, eval_sample)
    budget_order: np.ndarray | None = None                        # the budget rule's order of the train rows

    def ranked_rows(self, split: str = "train") -> np.ndarray | None:
        """Bool mask of the rows the teacher ranked (None: every row)."""
        mask = self.ranked.get(split)
        return None if mask is None else mask.astype(bool)

    @property
    def k(self) -> int:
        return int(self.meta["k"])

    @property
    def dim(self) -> int | None:
        return self.meta["dim"]

    @property
    def splits(self) -> list[str]:
        return list(self.meta["splits"])

    @classmethod
    def build(cls, dataset: PreparedDataset, ids: dict[str, np.ndarray],
              distances: dict[str, np.ndarray], item_embeddings: np.ndarray | None,
              teacher: dict, target_distances: dict[str, np.ndarray] | None = None,
              limit: int | None = None) -> "TeacherArtifacts":
        """Wrap a teacher's arrays computed on `dataset`, filling `meta` and validating against it.

        `limit` marks a smoke run over the first `limit` instances of each split: such artifacts
        report the teacher's metrics but cannot train a student (check_against refuses them).
        """
        if "train" not in ids:
            raise TeacherError("the teacher produced no train ranks; it must rank every training "
                               "instance (docs/method.md §2)")
        for split, array in ids.items():
            if np.asarray(array).dtype.kind not in "iu":
                raise TeacherError(f"{split} ids have dtype {np.asarray(array).dtype}; item ids must be "
                                   "integers")
        splits = [s for s in SPLITS if s in ids]
        embeddings = (None if item_embeddings is None
                      else np.ascontiguousarray(item_embeddings, dtype=np.float32))
        meta = {
            "k": int(np.shape(ids["train"])[1]) if np.ndim(ids["train"]) == 2 else None,
            "dim": None if embeddings is None else int(embeddings.shape[1]),
            "num_items": dataset.num_items,
            "dataset_hash": dataset.content_hash,
            "splits": splits,
            "teacher": teacher,
            "format_version": FORMAT_VERSION,
        }
        if limit is not None:
            meta["limit"] = int(limit)
        artifacts = cls(
            ids={s: np.ascontiguousarray(ids[s], dtype=np.int64) for s in splits},
            distances={s: np.ascontiguousarray(distances[s], dtype=np.float32)
                       for s in splits if s in distances},
            item_embeddings=embeddings,
            meta=meta,
            target_distances={s: np.ascontiguousarray(v, dtype=np.float32)
                              for s, v in (target_distances or {}).items() if s in splits},
        )
        artifacts.check_against(dataset, complete=False)
        return artifacts

    def save(self, out: str | Path, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Write the three files (and the teacher's own `metrics.json`, shaped like a student's, and
        `extra` files: name -> text, or an object written as JSON); `out` appears complete or not at
        all (atomic_directory)."""
        self._check_consistent()
        arrays = {}
        for split in self.splits:
            arrays[f"{split}_ids"] = self.ids[split]
            arrays[f"{split}_dist"] = self.distances[split]
            if split in self.target_distances:
                arrays[f"{split}_target_dist"] = self.target_distances[split]
            if split in self.ranked:
                arrays[f"{split}_ranked"] = self.ranked[split]
        if self.budget_order is not None:
            arrays["train_order"] = self.budget_order
        with atomic_directory(out) as tmp:
            save_file(arrays, str(tmp / RANKS_FILE))
            if self.item_embeddings is not None:
                save_file({"embeddings": self.item_embeddings}, str(tmp / EMBEDDINGS_FILE))
            write_json(tmp / META_FILE, self.meta)
            if metrics is not None:
                write_json(tmp / "metrics.json", metrics)
            for name, content in (extra or {}).items():
                if isinstance(content, str):
                    (tmp / name).write_text(content, encoding="utf-8")
                else:
                    write_json(tmp / name, content)
        self.path = Path(out)

    @classmethod
    def load(cls, path: str | Path, dataset: PreparedDataset | None = None) -> "TeacherArtifacts":
        """Read and validate a teacher-artifacts directory; given `dataset`, check it belongs to it."""
        path = Path(path)
        if not (path / META_FILE).is_file():
            if (path / "shard.json").is_file():
                raise TeacherError(f"{path}: one shard of a teacher run; join all shards with `python -m distill "
                                   "teacher merge SHARD1 SHARD2 ... --out TDIR` and pass TDIR")
            raise TeacherError(f"{path}: not teacher artifacts (no {META_FILE}); run the teacher "
                               "or import its outputs first")
        try:
            meta = read_json(path / META_FILE)
        except DistillError as exc:
            raise TeacherError(str(exc)) from None
        missing = [key for key in ("k", "dim", "num_items", "dataset_hash", "splits", "format_version")
                   if key not in meta]
        if missing:
            raise TeacherError(f"{path / META_FILE}: missing fields {missing}; write the artifacts again")
        if meta["format_version"] != FORMAT_VERSION:
            raise TeacherError(f"{path / META_FILE}: format_version {meta['format_version']}, this "
                               f"version reads {FORMAT_VERSION}; run the teacher again")

        ranks = _read_safetensors(path / RANKS_FILE)
        ids, distances, targets, ranked = {}, {}, {}, {}
        for split in meta["splits"]:
            if f"{split}_ranked" in ranks:
                ranked[split] = ranks[f"{split}_ranked"]
            for key in (f"{split}_ids", f"{split}_dist"):
                if key not in ranks:
                    raise TeacherError(f"{path / RANKS_FILE}: no {key} although {META_FILE} lists "
                                       f"split {split!r}; write the artifacts again")
            ids[split], distances[split] = ranks[f"{split}_ids"], ranks[f"{split}_dist"]
            if f"{split}_target_dist" in ranks:
                targets[split] = ranks[f"{split}_target_dist"]

        embeddings = None
        if meta["dim"] is not None:
            stored = _read_safetensors(path / EMBEDDINGS_FILE)
            if "embeddings" not in stored:
                raise TeacherError(f"{path / EMBEDDINGS_FILE}: no 'embeddings' array; write the "
                                   "artifacts again")
            embeddings = stored["embeddings"]

        artifacts = cls(ids=ids, distances=distances, item_embeddings=embeddings, meta=meta, path=path,
                        target_distances=targets, ranked=ranked, budget_order=ranks.get("train_order"))
        if dataset is None:
            artifacts._check_consistent()
        else:
            artifacts.check_against(dataset)
        return artifacts

    def check_against(self, dataset: PreparedDataset, complete: bool = True) -> None:
        """Raise TeacherError unless these artifacts were computed on `dataset` and fit its shapes;
        `complete` also refuses a `--limit` smoke run, which does not cover every instance."""
        limit = self.meta.get("limit")
        if limit is not None and complete:
            raise TeacherError(f"{self._file(META_FILE)}: computed with --limit {limit} (a smoke run over the first "
                               f"{limit} instances of each split); training needs every instance: run the teacher "
                               "again without --limit")
        if self.meta["dataset_hash"] != dataset.content_hash:
            raise TeacherError(
                f"{self._file(META_FILE)}: the teacher was computed for another dataset (hash "
                f"{str(self.meta['dataset_hash'])[:12]}, this prepared dataset is "
                f"{dataset.content_hash[:12]}); its item ids and rows would not line up. Run the "
                "teacher on this prepared dataset, or use the prepared dataset it was computed for")
        if self.meta["num_items"] != dataset.num_items:
            raise TeacherError(f"{self._file(META_FILE)}: num_items {self.meta['num_items']:,} but the "
                               f"prepared dataset has {dataset.num_items:,} items; run the teacher again")
        for split in self.splits:
            rows, expected = len(self.ids[split]), len(dataset.split(split))
            if limit is not None:
                expected = min(expected, limit)
            if rows != expected:
                raise TeacherError(f"{self._file(RANKS_FILE)}: {split}_ids has {rows:,} rows but the "
                                   f"prepared dataset has {expected:,} {split} instances; run the "
                                   "teacher again on this prepared dataset")
        # With num_items equal to the dataset's, the range and embedding-row checks below are
        # checks against the dataset as well.
        self._check_consistent()

    def _check_consistent(self) -> None:
        """Shapes, K, id ranges and finiteness: everything that holds with or without a dataset."""
        ranks, k, num_items = self._file(RANKS_FILE), self.meta["k"], self.meta["num_items"]
        if "train" not in self.splits:
            raise TeacherError(f"{ranks}: no train ranks; the teacher must rank every training "
                               "instance (docs/method.md §2)")
        if not isinstance(k, int) or k < 1:
            raise TeacherError(f"{ranks}: K must be a positive number of columns, got {k!r}")
        for split in self.splits:
            ids, dist = self.ids[split], self.distances.get(split)
            if ids.ndim != 2 or ids.shape[1] != k:
                raise TeacherError(f"{ranks}: {split}_ids has shape {list(ids.shape)} but K is {k} "
                                   f"(from the train ranks); every split must have K columns")
            if dist is None or dist.shape != ids.shape:
                shape = None if dist is None else list(dist.shape)
                raise TeacherError(f"{ranks}: {split}_dist has shape {shape} but {split}_ids has "
                                   f"{list(ids.shape)}; there must be one distance per ranked item")
            if ids.dtype.kind not in "iu":
                raise TeacherError(f"{ranks}: {split}_ids has dtype {ids.dtype}; item ids must be integers")
            bad = np.argwhere((ids < 0) | (ids >= num_items))
            if len(bad):
                row, col = bad[0]
                raise TeacherError(f"{ranks}: {split}_ids row {row}, column {col} is item "
                                   f"{ids[row, col]}, outside 0..{num_items - 1} ({num_items:,} items)")
            require_finite(dist, f"{ranks}: {split}_dist")
            if split in self.target_distances:
                target = self.target_distances[split]
                if target.shape != (ids.shape[0],):
                    raise TeacherError(f"{ranks}: {split}_target_dist has shape {list(target.shape)}; "
                                       f"expected one distance per instance ({ids.shape[0]:,})")
                require_finite(target, f"{ranks}: {split}_target_dist")
        self._check_budget(ranks)
        for split in ("val", "test"):
            mask = self.ranked.get(split)
            if mask is not None and (mask.shape != (len(self.ids[split]),) or not mask.any()
                                     or mask.max(initial=0) > 1):
                raise TeacherError(f"{ranks}: {split}_ranked must mark, with 0 and 1, which of the "
                                   f"{len(self.ids[split]):,} {split} instances the teacher ranked (at least one); "
                                   "write the artifacts again")
        if self.item_embeddings is None:
            if self.meta["dim"] is not None:
                raise TeacherError(f"{self._file(META_FILE)}: dim is {self.meta['dim']} but there are no "
                                   "item embeddings; write the artifacts again")
            return
        embeddings, file = self.item_embeddings, self._file(EMBEDDINGS_FILE)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.meta["dim"]:
            raise TeacherError(f"{file}: embeddings have shape {list(embeddings.shape)} but dim is "
                               f"{self.meta['dim']}; write the artifacts again")
        if embeddings.shape[0] != num_items:
            raise TeacherError(f"{file}: {embeddings.shape[0]:,} embedding rows but the dataset has "
                               f"{num_items:,} items; there must be one row per item")
        require_finite(embeddings, f"{file}: embeddings")

    def _check_budget(self, ranks: str) -> None:
        """A budget's mask and order agree with each other and with teacher.json's record."""
        record, mask = self.meta.get("budget"), self.ranked.get("train")
        if record is None and mask is None:
            return
        if record is None or mask is None or self.budget_order is None:
            raise TeacherError(f"{ranks}: a budget needs train_ranked, train_order and teacher.json's \"budget\" "
                               "together; write the artifacts again")
        n = len(self.ids["train"])
        if (mask.shape != (n,) or self.budget_order.shape != (n,) or self.budget_order.min(initial=0) < 0
                or self.budget_order.max(initial=0) >= n):
            raise TeacherError(f"{ranks}: train_ranked and train_order must have one entry per training instance "
                               f"({n:,}); write the artifacts again")
        if int(mask.sum()) != record.get("ranked") or not mask[self.budget_order[:record["ranked"]]].all():
            raise TeacherError(f"{ranks}: train_ranked does not mark the first {record.get('ranked')} rows of "
                               "train_order; write the artifacts again")

    def _file(self, name: str) -> str:
        return str(self.path / name) if self.path is not None else name


def _read_safetensors(file: Path) -> dict[str, np.ndarray]:
    try:
        return load_file(str(file))
    except FileNotFoundError:
        raise TeacherError(f"{file}: file not found; write the teacher artifacts again") from None
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise TeacherError(f"{file}: cannot read ({exc}); write the teacher artifacts again") from None


def require_finite(table: np.ndarray, what: str, first: int = 0) -> None:
    """Refuse NaN/inf in a 2-D array; rows and columns are counted from `first` in the message."""
    bad = np.argwhere(~np.isfinite(table))
    if len(bad):
        row, col = bad[0]
        raise TeacherError(f"{what}: row {row + first}, column {col + first} is {table[row, col]}, not a "
                           "finite number; the teacher's outputs must be real numbers")
