"""`make bench` (`python bench/training_bench.py --ml100k DIR --out FILE`): training speed,
evaluation speed, peak memory and inference latency of the students and the teachers.

Each measurement runs in its own process so that its peak memory (max RSS) is its own. Teachers
used for timing are random top-K lists with random D=4096 item embeddings: the cost of
distillation does not depend on what the teacher says, only on K and D.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STUDENTS = ("gru4rec", "sasrec", "dros", "caser")
TEACHER_DIM = 4096
TEACHER_K = 20
EVAL_USERS = 10_000


def timing_teacher(dataset, k: int = TEACHER_K, dim: int = TEACHER_DIM, seed: int = 0):
    from distill.teacher import TeacherArtifacts
    rng = np.random.default_rng(seed)
    ids = {s: rng.integers(0, dataset.num_items, (len(dataset.split(s)), k)) for s in ("train",)}
    dist = {s: np.sort(rng.random(ids[s].shape, dtype=np.float32), 1) for s in ids}
    emb = rng.standard_normal((dataset.num_items, dim), dtype=np.float32)
    return TeacherArtifacts.build(dataset, ids, dist, emb, {"kind": "random (timing only)"})


def run_case(case: dict) -> dict:
    """One student on one dataset: seconds per epoch, evaluation users/s, peak memory."""
    import torch

    from distill.config import TrainConfig
    from distill.data import PreparedDataset, Split
    from distill.evaluate import evaluate
    from distill.train import train

    dataset = PreparedDataset.load(case["data"])
    teacher = timing_teacher(dataset) if case["distilled"] else None
    config = TrainConfig(student=case["student"], epochs=case["epochs"], patience=case["epochs"], lam="0.7",
                         distill_precision=case.get("precision", "auto"))
    result = train(dataset, config, teacher)
    seconds = [r["seconds"] for r in result.history]
    test = dataset.test
    n = min(EVAL_USERS, len(test))
    split = Split(**{name: array[:n] for name, array in test.arrays().items()})
    evaluate(result.model, split)                                   # warm-up
    start = time.perf_counter()
    evaluate(result.model, split)
    eval_seconds = time.perf_counter() - start
    return {**case, "train_instances": len(dataset.train), "items": dataset.num_items,
            "epoch_seconds": min(seconds), "epoch_seconds_all": seconds,
            "eval_users": n, "eval_seconds": eval_seconds, "eval_users_per_s": n / eval_seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def latency_case(case: dict) -> dict:
    """Per-request latency (p50/p95 ms, single histories) and throughput of one model on one dataset:
    a student (its latency does not depend on its weights), the semantic teacher or the BIGRec
    teacher (`hf` backend), measured on the same test histories."""
    import torch

    from distill.data import PreparedDataset, Split
    from distill.latency import device_name, student_latency

    dataset = PreparedDataset.load(case["data"])
    if case["model"] == "student":
        from distill.config import TrainConfig
        from distill.students import build_student
        torch.manual_seed(0)
        model = build_student(TrainConfig(student="sasrec"), dataset.num_items, dataset.max_len)
        result = student_latency(model, dataset.test)
        return {**case, **result, "throughput_unit": "users/s at batch 256"}
    if case["model"] == "semantic":
        from distill.teacher.semantic import default_encoder, encode_texts, load_encoder
        from distill.teacher.titles import rank_split
        tokenizer, encoder = load_encoder(default_encoder())
        start = time.perf_counter()
        items = encode_texts(dataset.titles, tokenizer, encoder)
        encode_seconds = time.perf_counter() - start
        test = dataset.test
        timings = []
        for i in range(case["requests"] + 10):
            one = Split(**{name: array[i % len(test):i % len(test) + 1] for name, array in test.arrays().items()})
            began = time.perf_counter()
            rank_split(one, items, 20, 1, False)
            if i >= 10:
                timings.append((time.perf_counter() - began) * 1000)
        rows = min(len(dataset.train), 20_000)
        part = Split(**{name: array[:rows] for name, array in dataset.train.arrays().items()})
        began = time.perf_counter()
        rank_split(part, items, 20, 4096, False)
        seconds = time.perf_counter() - began
        return {**case, "p50_ms": float(np.percentile(timings, 50)), "p95_ms": float(np.percentile(timings, 95)),
                "throughput": rows / seconds, "throughput_unit": "instances/s (titles encoded once, "
                f"{encode_seconds:.1f} s for {dataset.num_items:,} items)", "device": device_name(torch.device("cpu"))}
    from distill.io import read_json
    from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
    work = Path(case["work"])
    options = BigRecOptions(style="movies", limit=case["limit"], block=case["limit"], batch=case["limit"],
                            latency_requests=case["requests"])
    bigrec_teacher(dataset, work / "bigrec-smoke", options=options, cache=work / "teacher-cache")
    latency = read_json(work / "bigrec-smoke" / "latency.json")
    return {**case, **latency, "throughput_unit": "instances/s at batch " + str(case["limit"])}


def _case_in_subprocess(case: dict) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--case", json.dumps(case)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _prepared(work: Path, name: str, make) -> str:
    from distill.data import PreparedDataset
    path = work / name
    if not (path / "stats.json").exists():
        make(path)
    return str(PreparedDataset.load(path).path)


def run_bench(args) -> list[dict]:
    from distill.data import PrepareOptions, prepare_dataset
    from distill.data.synth import generate_synthetic

    work = Path(args.out).parent if args.out else Path("bench-out")
    work.mkdir(parents=True, exist_ok=True)
    datasets = {}
    if args.ml100k and Path(args.ml100k).exists():
        datasets["ml-100k"] = _prepared(work, "ml-100k", lambda p: prepare_dataset(
            "movielens", args.ml100k, p, options=PrepareOptions()))

    def synthetic(path: Path) -> None:
        # ~100,000 training instances over >= 10,000 interacted items (a few of 10,350 stay unseen)
        users = 900 if args.quick else 3600
        generate_synthetic(work / "synthetic-csv", users=users, items=10_350, interactions_per_user=(30, 42), seed=0)
        prepare_dataset("csv", str(work / "synthetic-csv" / "interactions.csv"), path,
                        items=str(work / "synthetic-csv" / "items.csv"), options=PrepareOptions())

    datasets["synthetic"] = _prepared(work, "synthetic-100k" + ("-quick" if args.quick else ""), synthetic)
    students = ("sasrec",) if args.quick else STUDENTS
    results = []
    print(f"{'dataset':<10} {'student':<8} {'distilled':<10} {'train':>8} {'s/epoch':>8} "
          f"{'eval users/s':>13} {'eval 10k s':>10} {'peak MB':>8}", flush=True)
    for name, path in datasets.items():
        for student in students:
            for distilled in (False, True):
                r = _case_in_subprocess({"data": path, "dataset": name, "student": student,
                                         "distilled": distilled, "epochs": 2})
                results.append(r)
                _print_row(name, student, str(distilled), r)
    if not args.quick:
        # the same SASRec + DLLM2Rec epoch with the teacher path in fp32, for CPUs without bf16
        r = _case_in_subprocess({"data": datasets["synthetic"], "dataset": "synthetic", "student": "sasrec",
                                 "distilled": True, "epochs": 2, "precision": "fp32"})
        results.append(r)
        _print_row("synthetic", "sasrec", "fp32", r)
    if "ml-100k" in datasets:
        results += _latency_table(datasets["ml-100k"], work, quick=args.quick)
    print(f"distilled = ranking distillation (K=10 of {TEACHER_K}) + embedding distillation "
          f"(D={TEACHER_DIM} teacher embeddings, linear projector); best of 2 epochs; "
          f"{results[0]['threads']} CPU threads" if results else "")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    return results


def _print_row(dataset: str, student: str, distilled: str, r: dict) -> None:
    print(f"{dataset:<10} {student:<8} {distilled:<10} {r['train_instances']:>8} {r['epoch_seconds']:>8.2f} "
          f"{r['eval_users_per_s']:>13.0f} {r['eval_seconds'] * 10_000 / r['eval_users']:>10.3f} "
          f"{r['peak_rss_mb']:>8.0f}", flush=True)


def _latency_table(data: str, work: Path, quick: bool) -> list[dict]:
    """Teacher against student latency on ML-100k test histories: the product's headline ratio."""
    cases = [{"kind": "latency", "model": "student", "name": "SASRec student", "data": data},
             {"kind": "latency", "model": "semantic", "name": "semantic teacher (MiniLM)", "data": data,
              "requests": 200},
             {"kind": "latency", "model": "bigrec", "name": "BIGRec teacher (SmolLM2-135M, hf)", "data": data,
              "work": str(work), "limit": 4 if quick else 8, "requests": 4 if quick else 8}]
    print(f"\n{'ML-100k, one history per request':<36} {'p50 ms':>9} {'p95 ms':>9} {'throughput':>11}  unit")
    rows = []
    for case in cases:
        r = _case_in_subprocess(case)
        rows.append(r)
        print(f"{r['name']:<36} {r['p50_ms']:>9.2f} {r['p95_ms']:>9.2f} {r['throughput']:>11.2f}  "
              f"{r['throughput_unit']}", flush=True)
    student = rows[0]["p50_ms"]
    for r in rows[1:]:
        r["latency_ratio"] = r["p50_ms"] / student
        print(f"{r['name']}: {r['latency_ratio']:,.1f}x the student's p50 latency")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="training speed, evaluation speed and inference latency")
    parser.add_argument("--ml100k", help="MovieLens-100k directory (adds ML-100k rows and the latency table)")
    parser.add_argument("--quick", action="store_true", help="smaller synthetic set and fewer students")
    parser.add_argument("--out", help="write the results as JSON here (its directory holds the work files)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # one measurement, in its own process
    args = parser.parse_args(argv)
    if args.case:
        case = json.loads(args.case)
        print(json.dumps(latency_case(case) if case.get("kind") == "latency" else run_case(case)))
        return 0
    run_bench(args)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # `python bench/training_bench.py` from anywhere finds `distill`
    sys.exit(main())
