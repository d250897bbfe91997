"""BIGRec's grounding step (docs/method.md §2.4): generated text -> the nearest real items by L2 distance.

Queries (embedded generations) and items (embedded titles) come from the same base model, last
layer, last token. Both are centred on the items' mean first: L2 distances do not change, but LLM
hidden states share a large common component, and removing it keeps the float32 expansion
||q||^2 + ||e||^2 - 2 q.e exact enough to rank. Rows are processed `chunk` at a time, so memory is
chunk x num_items floats whatever the number of instances (20,000 items x 1,024 rows = 80 MB).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from distill.errors import raise_if_cancelled


def nearest_items(queries: torch.Tensor, items: torch.Tensor, k: int, histories: np.ndarray | None = None,
                  targets: np.ndarray | None = None, chunk: int = 1024,
                  should_cancel: Callable[[], bool] | None = None) -> dict[str, np.ndarray]:
    """Top-k ids and L2 distances of `items` for each query, ascending.

    Returns `ids`, `dist` (every item ranked) and, with `histories` ([n, L] padded with
    num_items), `ids_new`, `dist_new`: the same ranking with the history's own items moved behind
    every other item (BIGRec asks for a *new* item); with `targets`, `target_dist`: the distance to
    each instance's true next item (the per-instance confidence of docs/method.md §4).
    `should_cancel` is asked before each chunk (Cancelled when it says so).
    """
    num_items = items.shape[0]
    center = items.mean(0, keepdim=True)
    items = (items - center).float()
    item_norms = (items * items).sum(1)
    out: dict[str, list] = {"ids": [], "dist": [], "ids_new": [], "dist_new": [], "target_dist": []}
    for start in range(0, queries.shape[0], chunk):
        raise_if_cancelled(should_cancel)
        q = (queries[start:start + chunk].to(items.device) - center).float()
        squared = ((q * q).sum(1, keepdim=True) + item_norms - 2 * q @ items.T).clamp_min_(0)
        if targets is not None:
            t = torch.as_tensor(targets[start:start + chunk], device=items.device, dtype=torch.long)
            out["target_dist"].append(squared.gather(1, t[:, None]).squeeze(1).sqrt())
        top = torch.topk(squared, k, dim=1, largest=False, sorted=True)
        out["ids"].append(top.indices)
        out["dist"].append(top.values.sqrt())
        if histories is not None:
            history = torch.as_tensor(histories[start:start + chunk], device=items.device, dtype=torch.long)
            # Padding points at the first history item, which is moved back anyway; adding the
            # row's largest distance puts seen items after all unseen ones, in their own order.
            seen = torch.where(history >= num_items, history[:, :1], history)
            penalty = squared.amax(1, keepdim=True) + 1
            was_seen = torch.zeros_like(squared, dtype=torch.bool).scatter_(1, seen, True)
            squared = squared + was_seen * penalty
            top = torch.topk(squared, k, dim=1, largest=False, sorted=True)
            out["ids_new"].append(top.indices)
            # The distance reported is the true one, not the penalised one.
            true = top.values - was_seen.gather(1, top.indices) * penalty
            out["dist_new"].append(true.clamp_min_(0).sqrt())
    result = {}
    for name, parts in out.items():
        if parts:
            array = torch.cat(parts).cpu().numpy()
            result[name] = array.astype(np.int64 if name.startswith("ids") else np.float32)
    return result
