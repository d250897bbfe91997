"""`make bench-llm-teacher` (`python bench/llm_teacher_bench.py --ml100k DIR`): the first result of a
real LLM teacher, end to end on 2 CPU cores.

ML-100k (the default preparation). SmolLM2-135M-Instruct (the offline default base model) is
LoRA-fine-tuned on 320 seeded training prompts in the `movies` style (`teacher finetune`, 1 epoch: what fits),
then runs as the BIGRec teacher with the `hf` backend in the CPU-fast setting of `make
bench-generation` (greedy, bf16): it ranks a random budget of 2,000 training instances and a recorded
sample of 500 val and 500 test instances (`eval_sample`) for its own metrics. Budgets 500 and
1,000 are cut from it (`restrict`: nested subsets, one teacher computation). lambda_d is chosen on
val once (`lam=auto`, seed 0, at the largest budget); SASRec plain and distilled at every budget, at
that lambda_d (unless it is 0: then the distilled student is the plain one) and at --lam-fixed
(0.1), train over 3 seeds. The table: the teacher (on its test sample), most-popular, plain
and distilled (full test and the teacher's sample), the paired gain over plain with its bootstrap
CI and Wilcoxon p, the teacher's instances/s and every stage's wall time.

Everything is kept under --work (default bench-out/llm-teacher): a rerun reuses the adapter, the
teacher (its block cache resumes an interrupted run) and the trained students. Writes JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import write_result  # noqa: E402

METRIC = "ndcg@20"


def timed(stages: dict, name: str, work):
    """Run `work()`, keep its wall time in `stages[name]` (seconds), return its result."""
    started = time.perf_counter()
    result = work()
    stages[name] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--work", default="bench-out/llm-teacher")
    parser.add_argument("--budgets", default="500,1000,2000", help="training instances the teacher ranks")
    parser.add_argument("--eval-sample", type=int, default=500, help="val and test instances the teacher ranks")
    parser.add_argument("--finetune-sample", type=int, default=320)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--beams", type=int, default=1)
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--lam-fixed", type=float, default=0.1,
                        help="also distil at this lambda_d (the grid's smallest non-zero one by default)")
    parser.add_argument("--out", default="bench-out/llm_teacher.json")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))

    from distill.data import PrepareOptions, PreparedDataset, prepare_dataset
    from distill.evaluate import per_user_scores, teacher_metrics
    from distill.inference import TrainedStudent
    from distill.io import read_json
    from distill.recipe import compare_students, seed_summary, student_config, train_role
    from distill.teacher import TeacherArtifacts
    from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
    from distill.teacher.budget import restrict
    from distill.teacher.finetune import FinetuneOptions, finetune

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    if not (work / "data").is_dir():
        source = Path(args.ml100k)
        prepare_dataset("movielens", str(source / "u.data"), work / "data", items=str(source / "u.item"),
                        options=PrepareOptions())
    dataset = PreparedDataset.load(work / "data")

    adapter = work / "adapter"
    if not (adapter / "finetune.json").is_file():
        timed(stages, "finetune_s", lambda: finetune(
            dataset, adapter, None, FinetuneOptions(sample=args.finetune_sample, val_sample=64,
                                                    epochs=args.finetune_epochs, style="movies"), log=print))
    tuned = read_json(adapter / "finetune.json")

    largest = work / f"teacher-{budgets[-1]}"
    options = BigRecOptions(k=20, beams=args.beams, dtype=args.dtype, batch=16, budget=budgets[-1],
                            eval_sample=args.eval_sample)
    if not (largest / "teacher.json").is_file():
        timed(stages, "teacher_s", lambda: bigrec_teacher(dataset, largest, adapter=adapter, options=options,
                                                          cache=work / "cache", log=print))
    teacher_dirs = {budgets[-1]: largest}
    for budget in budgets[:-1]:
        teacher_dirs[budget] = work / f"teacher-{budget}"
        if not (teacher_dirs[budget] / "teacher.json").is_file():
            restrict(TeacherArtifacts.load(largest, dataset), budget).save(teacher_dirs[budget])
    artifacts = TeacherArtifacts.load(largest, dataset)
    latency = read_json(largest / "latency.json")
    sample = artifacts.ranked_rows("test")
    rows = np.flatnonzero(sample) if sample is not None else np.arange(len(dataset.test))
    targets = dataset.test.next

    popular = np.argsort(-np.bincount(dataset.train.next, minlength=dataset.num_items), kind="stable")[:20]
    most_popular = {"full": teacher_metrics(np.tile(popular, (len(dataset.test), 1)), targets)[METRIC],
                    "sample": teacher_metrics(np.tile(popular, (len(rows), 1)), targets[rows])[METRIC]}
    teacher_on_sample = teacher_metrics(artifacts.ids["test"][rows], targets[rows])

    train = {"epochs": args.epochs, "patience": args.patience}
    seeds = list(range(args.seeds))
    choice = timed(stages, "lam_choice_s", lambda: train_role(
        dataset, student_config("sasrec", train, {}, distilled=True), largest, work / "lam-auto", [0])[1][0])
    lam = choice["lam"]

    def on_sample(dirs) -> float:
        """The students' mean NDCG@20 over seeds on the teacher's sampled test rows."""
        return float(np.mean([per_user_scores(TrainedStudent.load(d).model, dataset.test, (20,))[METRIC][rows].mean()
                              for d in dirs]))

    plain_dirs, plain = timed(stages, "plain_s", lambda: train_role(
        dataset, student_config("sasrec", train, {}, distilled=False), None, work / "plain", seeds))
    result = {"dataset": {"name": "ml-100k", "train_instances": len(dataset.train), "items": dataset.num_items,
                          "test_instances": len(dataset.test), "test_sample": int(len(rows))},
              "teacher": {"model": "SmolLM2-135M-Instruct + LoRA", "finetune": {
                              "train_prompts": tuned["train_prompts"], "epochs": len(tuned["history"]),
                              "best_epoch": tuned["best_epoch"], "initial_val_loss": tuned["initial_val_loss"],
                              "best_val_loss": tuned["best_val_loss"], "seconds": tuned["history"][-1]["seconds"]},
                          "decoding": {"beams": args.beams, "dtype": args.dtype},
                          "instances": latency.get("instances"), "seconds": latency.get("seconds"),
                          "instances_per_s": latency.get("throughput"), "p50_ms": latency.get("p50_ms"),
                          "test_sample": teacher_on_sample,
                          "empty_generations": artifacts.meta["teacher"].get("empty_generations")},
              "most_popular_ndcg@20": most_popular, "lam": lam, "lam_choice": choice.get("lam_auto"),
              "seeds": seeds, "train": train,
              "plain": {"test": seed_summary(plain)["uncertainty"]["test"][METRIC], "sample": on_sample(plain_dirs)},
              "rows": [], "stages_s": stages}
    # The lambda_d chosen on val, and --lam-fixed: what the teacher does to the student when it is used.
    # A chosen lambda_d of 0 distils nothing: that student is the plain one, not trained again.
    for label, value in (("chosen", lam), ("fixed", args.lam_fixed)):
        if float(value) == 0.0:
            continue
        for budget in budgets:
            dirs, metrics = timed(stages, f"distilled_{label}_{budget}_s", lambda: train_role(
                dataset, student_config("sasrec", train, {"lam": str(value)}, distilled=True), teacher_dirs[budget],
                work / f"distilled-lam{value}-{budget}", seeds))
            comparison = compare_students(dataset, dirs, plain_dirs, teacher_dir=teacher_dirs[budget])
            result["rows"].append({"lam": float(value), "lam_source": label, "budget": budget,
                                   "test": seed_summary(metrics)["uncertainty"]["test"][METRIC],
                                   "sample": on_sample(dirs), "vs_plain": comparison["distilled_vs_baseline"],
                                   "vs_teacher": comparison["distilled_vs_teacher"]})

    t = result["teacher"]
    print(f"\nML-100k, SmolLM2-135M-Instruct + LoRA ({t['finetune']['train_prompts']} prompts), BIGRec teacher "
          f"(beams {args.beams}, {args.dtype}): {t['instances_per_s']:.2f} instances/s on "
          f"{t['instances']:,} instances, p50 {t['p50_ms']:.0f} ms per history; lambda_d {lam} (chosen on val)")
    print(f"{'model':<28} {'test NDCG@20':>22} {'on the sample':>14}  gain vs plain [95% CI], p")
    print(f"{'teacher (BIGRec)':<28} {'':>22} {teacher_on_sample[METRIC]:>14.4f}")
    print(f"{'most-popular':<28} {most_popular['full']:>22.4f} {most_popular['sample']:>14.4f}")
    p = result["plain"]
    print(f"{'SASRec plain':<28} {p['test']['mean']:>8.4f} [{p['test']['ci95'][0]:.4f}, {p['test']['ci95'][1]:.4f}]"
          f" {p['sample']:>14.4f}")
    for row in result["rows"]:
        c = row["vs_plain"]
        lo, hi = c["ci95_pct"]
        print(f"{'distilled, lam ' + str(row['lam']) + ' @' + format(row['budget'], ','):<28} {row['test']['mean']:>8.4f} "
              f"[{row['test']['ci95'][0]:.4f}, {row['test']['ci95'][1]:.4f}] {row['sample']:>14.4f}  "
              f"{c['gain_pct']:+.1f}% [{lo:+.1f}, {hi:+.1f}], p {c['p_value']:.3g} (n={c['n_users']})")
    print("stages (s):", json.dumps(stages))
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
