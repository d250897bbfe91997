"""`make bench` (`python bench/evidence_bench.py --ml100k DIR`): what the evidence costs.

- Seeds: one role's students over 3 seeds (`distill.recipe.train_role`) against one seed, the
  dataset loaded once; the issue's bound is 3x one seed's training.
- A sweep of 12 points over one teacher (`distill.sweep.run_sweep`, a 6 x 2 grid of lambda_d and
  ed_weight) against 12 single trainings plus the teacher's computation.

Every training runs a fixed number of epochs (patience = epochs), so the ratios measure overhead,
not early stopping. Prints one JSON object and writes it to --out.
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--student", default="sasrec")
    parser.add_argument("--out", default="bench-out/evidence.json")
    args = parser.parse_args()

    from distill.recipe import ensure_teacher, student_config, train_role
    from distill.sweep import expand_grid, run_sweep

    work, dataset = prepared_ml100k(args.ml100k, "evidence-bench-")
    fixed = {"epochs": args.epochs, "patience": args.epochs}
    result = {"dataset": "ml-100k", "train_instances": len(dataset.train), "items": dataset.num_items,
              "student": args.student, "epochs": args.epochs}

    baseline = student_config(args.student, fixed, {}, distilled=False)
    started = time.perf_counter()
    train_role(dataset, baseline, None, work / "one-seed", [0])
    one = time.perf_counter() - started
    started = time.perf_counter()
    train_role(dataset, baseline, None, work / "three-seeds", [0, 1, 2])
    three = time.perf_counter() - started
    result["seeds"] = {"one_seed_s": round(one, 2), "three_seeds_s": round(three, 2),
                       "ratio": round(three / one, 3), "bound": 3}

    started = time.perf_counter()
    teacher = ensure_teacher(dataset, {"kind": "titles", "k": 20}, work / "teacher")
    teacher_s = time.perf_counter() - started
    base = {"student": args.student, **fixed}
    started = time.perf_counter()
    train_role(dataset, student_config(args.student, fixed, {"lam": "0.5", "ed_weight": 0.1}, distilled=True),
               teacher, work / "single-point", [0])
    single = time.perf_counter() - started
    points = expand_grid({"lam": [0.0, 0.1, 0.3, 0.5, 0.7, 1.0], "ed_weight": [0.1, 0.3]})
    started = time.perf_counter()
    sweep = run_sweep(dataset, teacher, points, base, work / "sweep")
    sweep_s = time.perf_counter() - started
    budget = 12 * single + teacher_s
    result["sweep"] = {"points": len(points), "teacher_s": round(teacher_s, 2), "single_training_s": round(single, 2),
                       "sweep_s": round(sweep_s, 2), "budget_s (12 trainings + teacher)": round(budget, 2),
                       "sweep_plus_teacher_over_budget": round((sweep_s + teacher_s) / budget, 3),
                       "best": sweep["best"], "selected_on": sweep["selected_on"]}
    write_result(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
