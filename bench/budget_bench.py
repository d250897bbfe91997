"""`make bench-budget` (`python bench/budget_bench.py`): how much of the distillation gain survives
when the teacher ranks only part of the training instances, and which instances to spend it on.

On the demo's synthetic catalogue (250 users, 1,500 items with meaningful titles, where the
semantic teacher helps SASRec most) the semantic teacher is computed once per rule at the full
budget and cut to each smaller one (`distill.teacher.budget.restrict`, the prefix of the same
order: the budget curve costs one teacher). For each budget and rule (random, uncertain, recent),
SASRec is distilled with lambda_d fixed at LAM over SEEDS seeds and compared with the plain SASRec of
the same seeds: the mean test NDCG@20, the paired gain over the plain student with its bootstrap
95% CI and Wilcoxon p (per-user scores averaged over seeds), and the share of the full-budget gain
kept. Prints a table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import write_result  # noqa: E402

BUDGETS = (0.05, 0.1, 0.25, 0.5, 1.0)
RULES = ("random", "uncertain", "recent")
LAM = 0.1          # what `lam=auto` chose on val for this catalogue in `make demo`


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="bench-out/budget.json")
    args = parser.parse_args()

    from distill.data import PrepareOptions, PreparedDataset, prepare_dataset
    from distill.data.synth import generate_synthetic
    from distill.recipe import compare_students, ensure_teacher, seed_summary, student_config, train_role
    from distill.teacher import TeacherArtifacts
    from distill.teacher.budget import restrict

    work = Path(tempfile.mkdtemp(prefix="budget-bench-"))
    generate_synthetic(work / "raw", users=250, items=1500, seed=1)
    prepare_dataset("csv", str(work / "raw" / "interactions.csv"), work / "data", items=str(work / "raw" / "items.csv"),
                    options=PrepareOptions())
    dataset = PreparedDataset.load(work / "data")
    seeds = list(range(args.seeds))
    train = {"epochs": args.epochs}
    started = time.perf_counter()
    plain_dirs, plain = train_role(dataset, student_config("sasrec", train, {}, distilled=False), None,
                                   work / "plain", seeds)
    plain_s = time.perf_counter() - started
    result = {"dataset": {"users": dataset.stats["users"], "items": dataset.num_items,
                          "train_instances": len(dataset.train)},
              "lam": LAM, "seeds": seeds, "epochs": args.epochs,
              "plain": {"test_ndcg@20": seed_summary(plain)["uncertainty"]["test"]["ndcg@20"],
                        "seconds": round(plain_s, 1)},
              "rows": []}
    for rule in RULES:
        started = time.perf_counter()
        full = ensure_teacher(dataset, {"kind": "semantic", "budget": 1.0, "budget_rule": rule}, work / f"t-{rule}")
        teacher_s = time.perf_counter() - started
        for budget in BUDGETS:
            if budget == 1.0 and any(r["budget"] == 1.0 for r in result["rows"]):
                # every rule's full budget ranks every instance: the same teacher, trained once
                result["rows"].append({**next(r for r in result["rows"] if r["budget"] == 1.0), "rule": rule})
                continue
            teacher_dir = work / f"t-{rule}-{budget}"
            if budget == 1.0:
                teacher_dir = full
            else:
                cut = restrict(TeacherArtifacts.load(full, dataset), budget)
                cut.save(teacher_dir)
            started = time.perf_counter()
            dirs, metrics = train_role(dataset, student_config("sasrec", train, {"lam": str(LAM)}, distilled=True),
                                       teacher_dir, work / f"s-{rule}-{budget}", seeds)
            seconds = time.perf_counter() - started
            comparison = compare_students(dataset, dirs, plain_dirs)["distilled_vs_baseline"]
            result["rows"].append({"rule": rule, "budget": budget,
                                   "ranked": TeacherArtifacts.load(teacher_dir).meta["budget"]["ranked"],
                                   "test_ndcg@20": seed_summary(metrics)["uncertainty"]["test"]["ndcg@20"],
                                   "gain_pct": comparison["gain_pct"], "ci95_pct": comparison["ci95_pct"],
                                   "p_value": comparison["p_value"], "n_users": comparison["n_users"],
                                   "train_seconds": round(seconds, 1), "teacher_seconds": round(teacher_s, 1)})
    for rule in RULES:
        full_gain = next(r["gain_pct"] for r in result["rows"] if r["rule"] == rule and r["budget"] == 1.0)
        for row in result["rows"]:
            if row["rule"] == rule:
                row["gain_kept"] = row["gain_pct"] / full_gain if full_gain else None
    plain_ndcg = result["plain"]["test_ndcg@20"]
    print(f"\nplain SASRec test NDCG@20 {plain_ndcg['mean']:.4f} [{plain_ndcg['ci95'][0]:.4f}, "
          f"{plain_ndcg['ci95'][1]:.4f}] over {len(seeds)} seeds; distilled with lambda_d {LAM}")
    print(f"{'rule':<10} {'budget':>6} {'ranked':>7} {'NDCG@20':>8}  {'gain vs plain [95% CI]':<28} {'p':>7} "
          f"{'kept':>6}")
    for row in result["rows"]:
        lo, hi = row["ci95_pct"]
        print(f"{row['rule']:<10} {row['budget']:>6} {row['ranked']:>7,} {row['test_ndcg@20']['mean']:>8.4f}  "
              f"{row['gain_pct']:+6.1f}% [{lo:+6.1f}, {hi:+6.1f}]{'':<8} {row['p_value']:>7.4f} "
              f"{row['gain_kept']:>6.0%}")
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
