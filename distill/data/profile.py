"""What a prepared dataset looks like to a person: interactions per user (statistics and a
histogram), split sizes, and sample test histories with titles (the dataset page shows them)."""

from __future__ import annotations

import numpy as np

from distill.data.dataset import SPLITS, PreparedDataset

# Interactions-per-user histogram bins: [1, 5), [5, 10), ... [1000, inf).
EDGES = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 10 ** 9)
SAMPLES = 10        # test rows shown
SAMPLE_HISTORY = 5  # latest history titles shown per row


def dataset_profile(prepared: PreparedDataset) -> dict:
    """{users, lengths: {min, median, mean, p90, max}, histogram: {labels, counts}, samples, splits}."""
    users = np.concatenate([prepared.split(s).user for s in SPLITS])
    per_user = np.bincount(users) + 1   # a user's interactions: one per instance plus the first item
    per_user = per_user[per_user > 1]
    counts = np.histogram(per_user, bins=EDGES)[0].tolist()
    labels = [f"{lo}–{hi - 1}" if hi < EDGES[-1] else f"{lo}+" for lo, hi in zip(EDGES[:-1], EDGES[1:])]
    test = prepared.test
    samples = []
    for row in range(min(SAMPLES, len(test))):   # at most ten rows: display, not a hot path
        history = test.seq[row, :test.len_seq[row]][-SAMPLE_HISTORY:]
        samples.append({"user": prepared.user_ids[int(test.user[row])],
                        "history": [prepared.titles[int(i)] for i in history],
                        "earlier": int(test.len_seq[row]) - len(history),
                        "next": prepared.titles[int(test.next[row])],
                        "next_id": prepared.item_ids[int(test.next[row])]})
    return {"users": int(len(per_user)),
            "lengths": {"min": int(per_user.min()), "median": float(np.median(per_user)),
                        "mean": float(per_user.mean()), "p90": float(np.percentile(per_user, 90)),
                        "max": int(per_user.max())},
            "histogram": {"labels": labels, "counts": counts}, "samples": samples,
            "splits": {s: len(prepared.split(s)) for s in SPLITS}}
