"""A cheap content teacher from item titles alone, for machines without an LLM.

It mirrors BIGRec's grounding step (docs/method.md §2.4) with the LLM taken out: instead of embedding a
generated title, it embeds the user's history. Items become TF-IDF vectors of their lower-cased
title words, reduced to `dim` by a seeded truncated SVD (latent semantic analysis, so titles that
share no word but share a vocabulary neighbourhood still come close) and L2-normalised. A history
becomes the recency-weighted mean of its items' vectors, normalised. Every item is ranked by L2
distance to the history vector; the top K ids and distances are the teacher's outputs, and the
item vectors are its item embeddings (docs/method.md §2.5).

It is a weak teacher: docs/method.md §6 measured that a weak teacher can hurt the student, so runs with it
should use `lam=auto`.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np
import torch

from distill.data.dataset import SPLITS, PreparedDataset, Split
from distill.errors import TeacherError, raise_if_cancelled
from distill.latency import LATENCY_REQUESTS, request_source, single_request_latency
from distill.teacher.artifacts import TeacherArtifacts

TOKEN = re.compile(r"\w+")
# Weight of a history item relative to the one after it: the latest items say the most about the
# next one, as in any sequential recommender.
RECENCY_DECAY = 0.8
# Squared L2 distances between vectors of norm <= 1 are at most 4, so adding 4 to a history item's
# squared distance ranks it after every item the user has not seen, keeping the order among them.
HISTORY_PENALTY = 4.0
SEED = 0
# Randomized SVD settings: extra probe columns and power iterations buy accuracy of the top
# directions on TF-IDF's slowly decaying spectrum for a few cheap sparse products.
OVERSAMPLE = 10
POWER_ITERATIONS = 2


def title_teacher(dataset: PreparedDataset, k: int = 20, splits: tuple[str, ...] = SPLITS,
                  dim: int = 256, batch: int = 4096, exclude_history: bool = True,
                  should_cancel: Callable[[], bool] | None = None) -> TeacherArtifacts:
    """Rank every item for every instance of `splits` by title similarity to its history.

    `exclude_history` ranks the items already in the history last: they are the nearest by
    construction, and the teacher's prompt asks for a *new* item (docs/method.md §2.2). `batch` instances are
    ranked at a time, bounding memory at a few batch x num_items floats; `should_cancel` is asked
    before each batch (Cancelled when it says so).
    """
    require_list_length(dataset, k)
    if dim < 1 or batch < 1:
        raise TeacherError(f"dim and batch must be positive, got dim={dim}, batch={batch}")
    raise_if_cancelled(should_cancel)
    items = title_vectors(dataset.titles, dim)
    ids, distances, targets = {}, {}, {}
    for name in splits:
        ids[name], distances[name], targets[name] = rank_split(dataset.split(name), items, k, batch,
                                                               exclude_history, should_cancel)
    teacher = {
        "kind": "titles",
        "description": "TF-IDF title similarity",
        "dim": dim,
        "recency_decay": RECENCY_DECAY,
        "exclude_history": exclude_history,
        "seed": SEED,
    }
    return TeacherArtifacts.build(dataset, ids, distances, items.numpy(), teacher, targets)


def require_list_length(dataset: PreparedDataset, k: int) -> None:
    """A teacher that ranks the whole catalogue can list at most every item."""
    if not 1 <= k <= dataset.num_items:
        raise TeacherError(f"k must be in 1..{dataset.num_items} (the number of items), got {k}")


def title_vectors(titles: list[str], dim: int) -> torch.Tensor:
    """float32 [num_items, D] unit rows (zero for a title without words), D <= dim."""
    docs = [TOKEN.findall((title or "").lower()) for title in titles]
    vocabulary = {word: j for j, word in enumerate(sorted({word for doc in docs for word in doc}))}
    if not vocabulary:
        raise TeacherError("no item title contains a word; the title teacher needs item titles")
    num_items, num_words = len(docs), len(vocabulary)

    rows = np.repeat(np.arange(num_items), [len(doc) for doc in docs])
    cols = np.fromiter((vocabulary[word] for doc in docs for word in doc), dtype=np.int64, count=rows.size)
    counts = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])),
                                     torch.ones(rows.size, dtype=torch.float64),
                                     (num_items, num_words), check_invariants=True).coalesce()
    row, col = counts.indices()
    # Smoothed idf, as scikit-learn's default: a word in every title still counts a little.
    document_frequency = torch.bincount(col, minlength=num_words).double()
    idf = torch.log((1 + num_items) / (1 + document_frequency)) + 1
    weight = counts.values() * idf[col]
    norm = torch.zeros(num_items, dtype=torch.float64).index_add_(0, row, weight * weight).sqrt()
    tfidf = torch.sparse_coo_tensor(counts.indices(), weight / norm[row], (num_items, num_words),
                                    check_invariants=True)

    if num_words <= dim:
        vectors = tfidf.to_dense()  # already small enough: keep the exact TF-IDF geometry
    else:
        vectors = _truncated_svd(tfidf, min(dim, num_items))
    return _normalise(vectors).float()


def _truncated_svd(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """U * S of `matrix`'s top `rank` singular triplets, by a seeded randomized SVD (Halko et al.).

    The range finder is torch.svd_lowrank's; the last step eigen-decomposes a small
    [rank + OVERSAMPLE]^2 Gram matrix instead of taking the SVD of a wide [rank, vocabulary] matrix,
    which took most of a minute for a 20k-item catalogue. A private generator makes two runs
    identical without touching the caller's random state.
    """
    generator = torch.Generator().manual_seed(SEED)
    probe = torch.randn(matrix.shape[1], rank + OVERSAMPLE, generator=generator, dtype=matrix.dtype)
    sketch = matrix @ probe
    for _ in range(POWER_ITERATIONS):  # sharpen the spectrum; re-orthonormalise to keep precision
        sketch = matrix @ (matrix.T @ torch.linalg.qr(sketch).Q)
    basis = torch.linalg.qr(sketch).Q                  # [num_items, <= rank + OVERSAMPLE]
    projected = (matrix.T @ basis).T                   # basis^T @ matrix = U_b S V_b^T
    eigenvalues, eigenvectors = torch.linalg.eigh(projected @ projected.T)  # U_b, S^2 ascending
    top_values, top_vectors = eigenvalues[-rank:].flip(0), eigenvectors[:, -rank:].flip(1)
    return basis @ (top_vectors * top_values.clamp_min(0).sqrt())


def rank_split(split: Split, items: torch.Tensor, k: int, batch: int, exclude_history: bool,
               should_cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k item ids (int64) and L2 distances (float32, ascending) for every instance of `split`,
    and the distance to its true next item (the per-instance confidence of docs/method.md §4, `paper`).
    `should_cancel` is asked before each batch of `batch` instances."""
    if len(split) == 0:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32), np.zeros(0, dtype=np.float32)
    table = _padded_table(items)
    arrays = split.arrays()  # int64, as indexing needs
    seq, len_seq = torch.from_numpy(arrays["seq"]), torch.from_numpy(arrays["len_seq"])
    targets = torch.from_numpy(arrays["next"])
    ids, distances, target_distances = [], [], []
    for start in range(0, len(split), batch):
        raise_if_cancelled(should_cancel)
        history, length = seq[start:start + batch], len_seq[start:start + batch]
        squared = _squared_distances(history, length, table, items)
        target_distances.append(squared.gather(1, targets[start:start + batch, None]).squeeze(1).sqrt())
        top_ids, top_distances = _top_k(squared, history, k, exclude_history)
        ids.append(top_ids)
        distances.append(top_distances)
    return (torch.cat(ids).numpy().astype(np.int64), torch.cat(distances).numpy().astype(np.float32),
            torch.cat(target_distances).numpy().astype(np.float32))


def _padded_table(items: torch.Tensor) -> torch.Tensor:
    """Row num_items is the padding id's all-zero vector, so padded positions gather zeros."""
    return torch.cat([items, items.new_zeros(1, items.shape[1])])


def _squared_distances(history: torch.Tensor, length: torch.Tensor, table: torch.Tensor,
                       items: torch.Tensor) -> torch.Tensor:
    """[b, num_items] squared L2 distances from each history's profile to every item."""
    position = torch.arange(history.shape[1])
    age = length[:, None] - 1 - position  # 0 for the latest item, negative on padding
    weight = torch.where(age >= 0, RECENCY_DECAY ** age.clamp_min(0).float(), 0.0)
    profile = _normalise(torch.einsum("bl,bld->bd", weight, table[history]))
    # ||p - e||^2 expanded so the whole batch is one matmul against the catalogue, with
    # ||e||^2 = 1: an item without title words then sits as far as an unrelated one instead of
    # nearer (its zero vector is at distance ||p|| = 1 < sqrt(2)).
    return ((profile * profile).sum(1, keepdim=True) + 1 - 2 * profile @ items.T).clamp_min_(0)


def _top_k(squared: torch.Tensor, history: torch.Tensor, k: int,
           exclude_history: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k ids and L2 distances of `squared` (modified in place when `exclude_history`)."""
    if exclude_history:
        # Padding is redirected to the first history item (len_seq >= 1), which is penalised
        # anyway; repeated ids all write the same value, read before any write.
        seen = torch.where(history == squared.shape[1], history[:, :1], history)
        squared.scatter_(1, seen, squared.gather(1, seen) + HISTORY_PENALTY)
    top = torch.topk(squared, k, dim=1, largest=False, sorted=True)
    return top.indices, top.values.sqrt()


def profile_latency(dataset: PreparedDataset, items: torch.Tensor, k: int, exclude_history: bool,
                    requests: int = LATENCY_REQUESTS,
                    should_cancel: Callable[[], bool] | None = None) -> dict | None:
    """Single-history latency of ranking by the recency-weighted profile (the titles teacher, and
    the semantic one with history=mean): each request takes one user's raw history, builds its
    profile from the item vectors, scores every item and takes the top k, exactly as `rank_split`
    does for a batch. The item table is built once, before the requests (as a server would).
    `requests` histories of the test split (else val, else train), after one untimed warm-up;
    None when there are none to time (`requests` 0)."""
    check_latency_requests(requests)
    name, split = request_source(dataset)
    if split is None or requests == 0:
        return None
    table = _padded_table(items)
    seq, len_seq = split.seq, split.len_seq

    def request(i: int) -> None:
        history = torch.from_numpy(np.ascontiguousarray(seq[i:i + 1], dtype=np.int64))
        length = torch.from_numpy(np.ascontiguousarray(len_seq[i:i + 1], dtype=np.int64))
        _top_k(_squared_distances(history, length, table, items), history, k, exclude_history)

    return {**single_request_latency(request, min(requests, len(split)), should_cancel=should_cancel), "split": name}


def title_latency(dataset: PreparedDataset, artifacts: TeacherArtifacts, requests: int = LATENCY_REQUESTS,
                  should_cancel: Callable[[], bool] | None = None) -> dict | None:
    """`latency.json` of a titles teacher's `artifacts` (see `profile_latency`); None for `requests` 0.
    Reads the artifacts, never changes them."""
    teacher = artifacts.meta["teacher"]
    result = profile_latency(dataset, torch.from_numpy(artifacts.item_embeddings), artifacts.k,
                             teacher["exclude_history"], requests, should_cancel)
    return None if result is None else {"kind": "titles", **result}


def check_latency_requests(requests: int) -> None:
    """The option's TEACHER_BOUNDS (as parse_teacher checks it), for callers that bypass the registry."""
    from distill.teacher.registry import check_teacher_option  # the registry imports this module
    check_teacher_option("latency_requests", requests)


def _normalise(vectors: torch.Tensor) -> torch.Tensor:
    """L2-normalise rows; all-zero rows (no title words, or no history words) stay zero."""
    return vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)
