"""`make bench` (`python bench/export_bench.py --ml100k DIR`): the exported students against torch.

For each student (GRU4Rec, SASRec, DROS, Caser) trained on ML-100k (a short training: the weights'
values do not change the cost), `python -m distill export` to ONNX and to TorchScript, each checked
on every test history at export. Timed in this one process with the same number of threads for
every runtime: single-history requests (p50/p95 ms; the history excluded and the top-20 taken
inside the model) and users/s at batch 256, torch eager against onnxruntime and TorchScript.
Prints a table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import prepared_ml100k, write_result  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--out", default="bench-out/export.json")
    args = parser.parse_args()

    import torch

    from distill.export import EXPORT_FORMATS, export_run
    from distill.recipe import ensure_student, student_config

    work, dataset = prepared_ml100k(args.ml100k, "export-bench-")
    rows = []
    for student in ("gru4rec", "sasrec", "dros", "caser"):
        run = work / student
        ensure_student(dataset, student_config(student, {"epochs": args.epochs}, {}, distilled=False), None, run)
        for fmt in EXPORT_FORMATS:
            started = time.perf_counter()
            card = export_run(run, dataset, fmt, work / f"{student}-{fmt}", k=20, name="ml-100k",
                              requests=args.requests, batch_size=256)
            seconds = time.perf_counter() - started
            latency = card["latency"]
            runtime = card["interface"]["runtime"]
            rows.append({"student": student, "format": fmt, "runtime": runtime, "export_s": round(seconds, 1),
                         "checked_histories": card["check"]["histories"],
                         "max_abs_score_diff": card["check"]["max_abs_score_diff"],
                         "threads": latency["threads"], "torch": latency["torch"], runtime: latency[runtime]})
    print(f"\nML-100k, {dataset.num_items:,} items, window {dataset.max_len}, {torch.get_num_threads()} threads; "
          f"single-history p50/p95 ms and users/s at batch 256")
    print(f"{'student':<8} {'runtime':<12} {'p50':>7} {'p95':>7} {'users/s':>9}   {'torch p50':>9} {'p95':>7} "
          f"{'users/s':>9}   export s")
    for row in rows:
        mine, torch_ = row[row["runtime"]], row["torch"]
        print(f"{row['student']:<8} {row['runtime']:<12} {mine['p50_ms']:>7.3f} {mine['p95_ms']:>7.3f} "
              f"{mine['throughput']:>9.0f}   {torch_['p50_ms']:>9.3f} {torch_['p95_ms']:>7.3f} "
              f"{torch_['throughput']:>9.0f}   {row['export_s']:>8.1f}")
    write_result(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
