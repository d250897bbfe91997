"""Small in-memory datasets and teachers for tests that must not depend on a reader."""

from __future__ import annotations

import numpy as np

from distill.data.dataset import PreparedDataset, Split, content_hash
from distill.teacher import TeacherArtifacts


def chain_dataset(num_items: int = 40, users: int = 120, length: int = 14, max_len: int = 10,
                  follow: float = 0.8, seed: int = 0, titles: list[str] | None = None) -> PreparedDataset:
    """Users walk a chain i -> i+1 (mod N) with probability `follow`, else jump anywhere.

    A sequential model can learn the chain; instances are split 80/10/10 by target time.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        item = int(rng.integers(num_items))
        start = int(rng.integers(0, 1000))
        history = [item]
        for step in range(1, length):
            item = (item + 1) % num_items if rng.random() < follow else int(rng.integers(num_items))
            window = history[-max_len:]
            rows.append((start + step, user, window, item))
            history.append(item)
    rows.sort(key=lambda r: (r[0], r[1]))
    pad = num_items

    def to_split(part):
        seq = np.full((len(part), max_len), pad, dtype=np.int64)
        for i, (_, _, window, _) in enumerate(part):
            seq[i, : len(window)] = window
        return Split(seq=seq,
                     len_seq=np.array([len(r[2]) for r in part], dtype=np.int64),
                     next=np.array([r[3] for r in part], dtype=np.int64),
                     user=np.array([r[1] for r in part], dtype=np.int64),
                     time=np.array([r[0] for r in part], dtype=np.int64))

    n = len(rows)
    cut1, cut2 = int(n * 0.8), int(n * 0.9)
    splits = {"train": to_split(rows[:cut1]), "val": to_split(rows[cut1:cut2]), "test": to_split(rows[cut2:])}
    item_ids = [str(i) for i in range(num_items)]
    titles = list(titles) if titles is not None else [f"item {i}" for i in range(num_items)]
    stats = {"users": users, "items": num_items, "interactions": users * length, "max_len": max_len,
             "split": "time", "instances": {k: len(v) for k, v in splits.items()},
             "content_hash": content_hash(item_ids, titles, splits)}
    return PreparedDataset(item_ids=item_ids, titles=titles, user_ids=[str(u) for u in range(users)],
                           stats=stats, **splits)


WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega").split()


def llm_world(root, epochs: int = 2, lr: float = 2e-3):
    """A prepared dataset with film titles at root/data, a tiny Llama at root/tiny and a LoRA
    adapter fine-tuned on the dataset at root/adapter: (dataset, root, finetune record). The
    default training is brief; epochs=20, lr=3e-2 make the model write title-shaped answers."""
    from distill.teacher.finetune import FinetuneOptions, finetune
    from distill.teacher.tiny import build_tiny_llm
    dataset = chain_dataset(num_items=24, users=12, length=8,
                            titles=[f"The {w.title()} Story ({1980 + i})" for i, w in enumerate(WORDS)])
    (root / "data").mkdir()
    dataset.save(root / "data")
    dataset.path = root / "data"
    build_tiny_llm(root / "tiny", dataset.titles)
    record = finetune(dataset, root / "adapter", root / "tiny",
                      FinetuneOptions(sample=48, val_sample=8, epochs=epochs, patience=epochs, batch=8, lr=lr))
    return dataset, root, record


def small_teacher(data, k=5, dim=16, seed=0):
    """A random teacher (top-k lists, distances, item embeddings) for trainer smoke tests."""
    rng = np.random.default_rng(seed)
    ids = {s: rng.integers(0, data.num_items, (len(data.split(s)), k)) for s in ("train", "val", "test")}
    dist = {s: np.sort(rng.random((len(data.split(s)), k)), 1).astype(np.float32) for s in ids}
    return TeacherArtifacts.build(data, ids, dist, rng.normal(size=(data.num_items, dim)).astype(np.float32),
                                  {"kind": "random"})
