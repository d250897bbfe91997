"""The DLLM2Rec reference code's teacher files (`myrank_train.txt`, `confidence_train.txt`,
`all_embeddings.pt`) converted into teacher artifacts (`distill.teacher.artifacts`, docs/method.md §4-§5)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from distill.data.dataset import PreparedDataset
from distill.errors import TeacherError
from distill.teacher.artifacts import TeacherArtifacts, require_finite
from distill.teacher.budget import with_budget


def import_reference(dataset: PreparedDataset, ranks_path: str | Path, confidence_path: str | Path,
                     embeddings_path: str | Path | None, out: str | Path,
                     k: int | None = None, budget=None, budget_rule: str = "random",
                     budget_seed: int = 0) -> TeacherArtifacts:
    """Convert the DLLM2Rec reference code's teacher files into teacher artifacts at `out`.

    `ranks_path` (myrank_train.txt) and `confidence_path` (confidence_train.txt) hold one row per
    training instance of `dataset`, in its order: the teacher's top item ids and their distances
    (docs/method.md §4 uses exp(-distance) as confidence). `embeddings_path` (all_embeddings.pt) holds a
    [num_items, D] tensor; it is read with weights_only=True so a crafted pickle cannot run code.
    `k` keeps the first k columns (the reference code's `candidate_topk`); default all. `budget`
    keeps the ranks of part of the training instances only (distill.teacher.budget).
    Everything is validated before anything is written, so a failure leaves `out` untouched.
    """
    ranks_path, confidence_path = Path(ranks_path), Path(confidence_path)
    ranks = _read_table(ranks_path)
    expected = len(dataset.train)
    if ranks.shape[0] != expected:
        raise TeacherError(f"{ranks_path.name}: {ranks.shape[0]:,} rows but the prepared dataset has "
                           f"{expected:,} training instances; the file needs one row per training "
                           "instance, in order: export it from the teacher run on this prepared dataset")
    confidence = _read_table(confidence_path)
    if confidence.shape != ranks.shape:
        raise TeacherError(f"{confidence_path.name}: shape {_shape(confidence)} but {ranks_path.name} "
                           f"is {_shape(ranks)}; both come from one teacher run and need one distance "
                           "per ranked item: pass the pair from the same run")
    if k is not None:
        if not 1 <= k <= ranks.shape[1]:
            raise TeacherError(f"{ranks_path.name}: has {ranks.shape[1]} columns, so k must be in "
                               f"1..{ranks.shape[1]}, got {k}")
        ranks, confidence = ranks[:, :k], confidence[:, :k]

    ids = _item_ids(ranks, ranks_path.name, dataset.num_items)
    require_finite(confidence, confidence_path.name, first=1)
    embeddings = None if embeddings_path is None else _read_reference_embeddings(Path(embeddings_path),
                                                                                  dataset.num_items)
    teacher = {
        "kind": "reference",
        "description": "imported from the DLLM2Rec reference code's files",
        "files": {"ranks": ranks_path.name, "confidence": confidence_path.name,
                  "embeddings": None if embeddings_path is None else Path(embeddings_path).name},
    }
    artifacts = TeacherArtifacts.build(dataset, {"train": ids}, {"train": confidence}, embeddings, teacher)
    with_budget(artifacts, dataset, budget, budget_rule, budget_seed)
    artifacts.save(out)
    return artifacts


def _read_table(path: Path) -> np.ndarray:
    """A whitespace-separated table of numbers, as np.savetxt writes it; always 2-D float64."""
    try:
        with warnings.catch_warnings():
            # An empty file only warns; the row-count check then reports it with the fix.
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise TeacherError(f"{path}: file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TeacherError(f"{path.name}: not a whitespace-separated table of numbers ({exc}); "
                           "write it with np.savetxt, one row per training instance") from None


def _item_ids(ranks: np.ndarray, name: str, num_items: int) -> np.ndarray:
    """Float table (np.savetxt writes ids as 12.0) -> int64 ids, refusing fractions and strays."""
    bad = np.argwhere(~np.isfinite(ranks) | (ranks != np.round(ranks)))
    if len(bad):
        row, col = bad[0]
        raise TeacherError(f"{name}: row {row + 1}, column {col + 1} is {ranks[row, col]}, not an "
                           "item id (ids are whole numbers); pass the rank file, not the confidence file")
    bad = np.argwhere((ranks < 0) | (ranks >= num_items))
    if len(bad):
        row, col = bad[0]
        raise TeacherError(f"{name}: row {row + 1}, column {col + 1} is item {int(ranks[row, col])} but the "
                           f"prepared dataset has {num_items:,} items (ids 0..{num_items - 1}); the ranks "
                           "were computed with another item map: recompute them on this prepared dataset")
    return ranks.astype(np.int64)


def _read_reference_embeddings(path: Path, num_items: int) -> np.ndarray:
    """all_embeddings.pt -> float32 [num_items, D]; only a plain tensor is accepted."""
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise TeacherError(f"{path}: file not found") from None
    except Exception as exc:  # torch raises UnpicklingError, KeyError, EOFError, RuntimeError ...
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        problem = (f"it pickles {refused.group(1)}, which is refused because unpickling it could run code"
                   if refused else f"not a torch.save file ({type(exc).__name__}: {str(exc)[:200]})")
        raise TeacherError(f"{path.name}: cannot be loaded with torch.load(weights_only=True): {problem}; "
                           "save the [num_items, D] embedding tensor itself with torch.save(tensor)") from None
    if not isinstance(loaded, torch.Tensor):
        raise TeacherError(f"{path.name}: holds a {type(loaded).__name__}, not a tensor; save the "
                           "[num_items, D] embedding tensor itself with torch.save(tensor)")
    if loaded.ndim != 2 or not loaded.is_floating_point():
        raise TeacherError(f"{path.name}: a {loaded.dtype} tensor of shape {list(loaded.shape)}; expected "
                           "a floating-point [num_items, D] tensor")
    if loaded.shape[0] != num_items:
        raise TeacherError(f"{path.name}: {loaded.shape[0]:,} rows but the prepared dataset has "
                           f"{num_items:,} items; it needs one row per item in the prepared item order: "
                           "recompute the embeddings on this prepared dataset")
    embeddings = loaded.detach().to(torch.float32).contiguous().numpy()
    require_finite(embeddings, path.name)
    return embeddings


def _shape(array: np.ndarray) -> str:
    return " x ".join(f"{n:,}" for n in array.shape)
