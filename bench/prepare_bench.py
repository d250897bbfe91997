"""Preparing 1M interactions: wall time and peak memory of `prepare_dataset("csv", DIR, out)`.

Writes an Amazon-like CSV folder (10k users, 50k items, 1M interactions: `interactions.csv` with
user_id,item_id,timestamp and `items.csv` with item_id,title; string ids such as ASINs, some
titles quoted), then prepares it in a fresh Python process pinned to 2 CPU cores. The limits: under
30 s and 1.5 GB peak RSS. Prints the result as JSON, writes it to bench-out/prepare.json, and
exits 1 when over either limit.

    python bench/prepare_bench.py [--out DIR] [--interactions N] [--ids token|int]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 30.0
LIMIT_MB = 1500.0
CORES = 2
ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
WORDS = np.array("red blue quiet rapid paper stapler desk lamp chair pen ink folder label tape clip board "
                 "marker notebook binder calendar planner scissors ruler eraser envelope stamp".split())

CHILD = """
import json, os, sys, time
cores = sorted(os.sched_getaffinity(0))[:{cores}]
os.sched_setaffinity(0, cores)
start = time.perf_counter()
from distill.data import prepare_dataset
dataset = prepare_dataset("csv", sys.argv[1], sys.argv[2])
print(json.dumps({{"prepare_seconds": time.perf_counter() - start, "cores": len(cores),
                  "stats": {{k: dataset.stats[k] for k in ("users", "items", "interactions", "instances")}}}}))
"""


def tokens(rng: np.random.Generator, count: int, prefix: str, length: int) -> np.ndarray:
    """`count` distinct ids such as B0XXXXXXXX (prefix + `length` uppercase letters and digits)."""
    out = np.empty(0, dtype=str)
    while len(out) < count:
        draw = ALPHABET[rng.integers(len(ALPHABET), size=(count, length))]
        more = np.char.add(prefix, np.array(["".join(row) for row in draw.tolist()]))
        out = np.unique(np.concatenate([out, more]))
    return rng.permutation(out)[:count]


def write_data(folder: Path, users: int, items: int, interactions: int, ids: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    user = np.sort(rng.integers(users, size=interactions))
    # Zipf-like item popularity, as in real catalogues.
    weight = 1.0 / np.arange(1, items + 1) ** 0.8
    item = rng.choice(items, size=interactions, p=weight / weight.sum())
    time_ = 1_400_000_000 + rng.integers(0, 5 * 365 * 86_400, size=interactions)
    order = np.lexsort((time_, user))
    user, item, time_ = user[order], item[order], time_[order]
    if ids == "token":
        user_names, item_names = tokens(rng, users, "A", 13), tokens(rng, items, "B0", 8)
    else:
        user_names, item_names = np.arange(users).astype(str), np.arange(items).astype(str)
    columns = (user_names[user], item_names[item], time_.astype(str))
    with open(folder / "interactions.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write("user_id,item_id,timestamp\n")
        fh.write("\n".join(map(",".join, zip(*(c.tolist() for c in columns)))) + "\n")
    words = WORDS[rng.integers(len(WORDS), size=(items, 3))].tolist()
    titles = [" ".join(w).title() + f" {i}" for i, w in enumerate(words)]
    titles = [f'"{t}, Pack of {i % 12 + 1}"' if i % 5 == 0 else t for i, t in enumerate(titles)]
    with open(folder / "items.csv", "w", encoding="utf-8", newline="") as fh:
        fh.write("item_id,title\n")
        fh.write("\n".join(map(",".join, zip(item_names.tolist(), titles))) + "\n")


def measured_run(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command`; (process, wall seconds, its peak RSS in MB).

    The peak is the child's ru_maxrss from wait4: what getrusage(RUSAGE_CHILDREN) reports, for
    this child alone. Linux carries a peak RSS over fork and exec, so this parent stays small
    (the data is generated in another process) and the figure is the child's own."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (subprocess.CompletedProcess(command, proc.returncode, out.read(), err.read()), seconds,
                usage.ru_maxrss / 1024)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="folder for the generated CSV files (default: a temporary folder)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--ids", choices=["token", "int"], default="token", help="ASIN-like ids or integers")
    parser.add_argument("--json", default=str(ROOT / "bench-out" / "prepare.json"))
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        write_data(Path(args.out), args.users, args.items, args.interactions, args.ids)
        return 0

    env = {**os.environ, **{name: str(CORES) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                           "MKL_NUM_THREADS")}}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as tmp:
        data = Path(args.out) if args.out else Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate-only", "--out", str(data), "--users", str(args.users),
                        "--items", str(args.items), "--interactions", str(args.interactions), "--ids", args.ids],
                       check=True, env=env)
        generate_seconds = time.perf_counter() - start
        proc, seconds, peak_mb = measured_run(
            [sys.executable, "-c", CHILD.format(cores=CORES), str(data), str(Path(tmp) / "prepared")], env)
        if proc.returncode != 0:
            print(proc.stdout + proc.stderr, file=sys.stderr)
            return 2
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        size_mb = sum(p.stat().st_size for p in data.iterdir()) / 2**20

    result = {"benchmark": "prepare csv", "interactions": args.interactions, "users": args.users,
              "items": args.items, "ids": args.ids, "input_mb": round(size_mb, 1),
              "generate_seconds": round(generate_seconds, 2), "wall_seconds": round(seconds, 2),
              "prepare_seconds": round(child["prepare_seconds"], 2), "peak_rss_mb": round(peak_mb, 1),
              "cores": child["cores"], "stats": child["stats"],
              "limits": {"wall_seconds": LIMIT_SECONDS, "peak_rss_mb": LIMIT_MB},
              "ok": seconds < LIMIT_SECONDS and peak_mb < LIMIT_MB}
    print(json.dumps(result, indent=2))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
