#!/usr/bin/env python3
"""Recommend with an exported DLLM2Rec Studio student, without the studio.

    python serve.py --history ID,ID,... [--k 10] [--include-history]

prints {"items": [...], "scores": [...], "titles": [...]} as JSON: the same answer as
`python -m distill recommend` on the run this directory was exported from. Item ids are the
dataset's own ids (items.json). A history longer than the model's window keeps its newest items
(cut from the left); every item of the history is left out of the answer unless --include-history.
Unknown ids, an empty history or a bad --k exit 2 with one `error:` line.

Needs only the standard library, numpy and the runtime named below (onnxruntime for model.onnx).
Import it to serve from Python: `Recommender(directory).recommend(history, k)`.
model_card.md describes the model's inputs and outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# BEGIN BACKEND
import onnxruntime


def load_backend(path: Path):
    """The exported model as `run(seq, len_seq, exclude) -> (ids, scores)` on numpy arrays."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(seq, len_seq, exclude):
        ids, scores = session.run(["ids", "scores"], {"seq": seq, "len_seq": len_seq, "exclude": exclude})
        return ids, scores

    return run
# END BACKEND


class ServeError(Exception):
    """A request this model cannot answer; the message says why."""


class Recommender:
    def __init__(self, directory: str | Path = Path(__file__).resolve().parent):
        directory = Path(directory)
        card = json.loads((directory / "model_card.json").read_text(encoding="utf-8"))
        items = json.loads((directory / "items.json").read_text(encoding="utf-8"))
        interface = card["interface"]
        self.item_ids = items["ids"]
        self.titles = items["titles"]
        self.index = {raw: i for i, raw in enumerate(self.item_ids)}
        self.max_len = interface["max_len"]
        self.pad_id = interface["pad_id"]
        self.k = interface["k"]
        self.run = load_backend(directory / interface["file"])

    def recommend(self, history: list[str], k: int = 10, exclude_history: bool = True) -> dict:
        unknown = [raw for raw in history if raw not in self.index]
        if unknown:
            raise ServeError(f"history item(s) {', '.join(map(repr, unknown[:5]))} are not in this model's "
                             f"catalogue of {len(self.item_ids)} items; use item ids as in items.json")
        if not history:
            raise ServeError("history is empty; give at least one item id")
        if not 1 <= k <= self.k:
            raise ServeError(f"k={k}: this model answers 1 to {self.k} items (k was fixed at export)")
        ids = [self.index[raw] for raw in history]
        window = ids[-self.max_len:]
        seq = np.full((1, self.max_len), self.pad_id, dtype=np.int64)
        seq[0, :len(window)] = window
        exclude = sorted(set(ids)) if exclude_history else [self.pad_id]
        top, scores = self.run(seq, np.array([len(window)], dtype=np.int64), np.array([exclude], dtype=np.int64))
        kept = [(int(i), float(s)) for i, s in zip(top[0], scores[0]) if np.isfinite(s)][:k]
        return {"items": [self.item_ids[i] for i, _ in kept], "scores": [round(s, 6) for _, s in kept],
                "titles": [self.titles[i] for i, _ in kept]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Recommend items for a history with this exported student.")
    parser.add_argument("--history", required=True, help="item ids, oldest first, separated by commas")
    parser.add_argument("--k", type=int, default=10, help="items to answer (default 10)")
    parser.add_argument("--include-history", action="store_true", help="let the history's own items be answered")
    parser.add_argument("--model", default=str(Path(__file__).resolve().parent),
                        help="the exported directory (default: this file's)")
    args = parser.parse_args(argv)
    history = [part.strip() for part in args.history.split(",") if part.strip()]
    try:
        answer = Recommender(args.model).recommend(history, args.k, exclude_history=not args.include_history)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
