"""The stages of one run, each resumable from its artifacts (docs/architecture.md §3, one run's path).

prepare -> teacher -> baseline student -> distilled student -> comparison; the teacher and the
students come from `distill.recipe`. A stage whose output directory is complete is skipped, so a
rerun (or a redelivered task) repeats no finished work. With one seed (the default) each student
is one run directory; with several, `student-<role>/seed-<s>/` each, the summary reports their mean
and t interval. comparison.json holds the paired tests over test users (distilled vs baseline, vs
teacher): with one seed its interval reflects the users only, not the training noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.data import PrepareOptions, PreparedDataset, prepare_dataset
from distill.data.synth import generate_synthetic
from distill.evaluate import most_popular_metrics
from distill.inference import TrainedStudent
from distill.io import read_json, write_json
from distill.latency import student_latency
from distill.recipe import check_seeds, compare_students, ensure_teacher, seed_summary, student_config, train_role
from distill.train import Callbacks

REPORTED = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


@dataclass
class PipelineOptions:
    data: str | None = None          # input path; None generates the synthetic catalogue
    format: str = "csv"              # input format of `data`
    items: str | None = None         # items/titles file where the format needs one
    student: str = "sasrec"          # student architecture
    overrides: dict | None = None    # TrainConfig options for both students (e.g. epochs)
    teacher_k: int = 20              # teacher list length
    teacher: str = "titles"          # titles (TF-IDF) | semantic (all-MiniLM-L6-v2 or `teacher_model`)
    teacher_model: str | None = None # local encoder directory for `semantic`
    seeds: int = 1                   # students per role, seeds seed..seed+seeds-1 (`seed` from overrides)


def log(message: str) -> None:
    print(message, flush=True)


def run_pipeline(workdir: str | Path, options: PipelineOptions, callbacks: Callbacks | None = None) -> dict:
    workdir = Path(workdir)
    overrides = options.overrides or {}
    baseline_config = student_config(options.student, overrides, {}, distilled=False)
    seeds = check_seeds(range(baseline_config.seed, baseline_config.seed + options.seeds))
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir, teacher_dir = workdir / "data", workdir / "teacher"
    baseline_dir, distilled_dir = workdir / "student-baseline", workdir / "student-distilled"

    if not data_dir.exists():
        source, fmt, items = options.data, options.format, options.items
        if source is None:
            # Sparse on purpose (~7,700 training instances over ~1,400 items): the regime of the
            # paper's Amazon datasets, where students are weak and a teacher has most to give.
            log("synth: generating the synthetic catalogue (250 users, 1,500 items)")
            generate_synthetic(workdir / "synthetic", users=250, items=1500, seed=1)
            source, fmt, items = str(workdir / "synthetic" / "interactions.csv"), "csv", str(workdir / "synthetic" / "items.csv")
        log(f"prepare: {source} ({fmt})")
        prepare_dataset(fmt, source, data_dir, items=items, options=PrepareOptions())
    dataset = PreparedDataset.load(data_dir)
    stats = dataset.stats
    log(f"prepare: {stats['users']} users, {stats['items']} items, instances {stats['instances']}")

    teacher_spec = {"kind": options.teacher, "k": options.teacher_k}
    if options.teacher == "semantic":
        teacher_spec["model"] = options.teacher_model
    teacher_dir = ensure_teacher(dataset, teacher_spec, teacher_dir, log=log)

    baseline_dirs, baseline = train_role(dataset, baseline_config, None, baseline_dir, seeds, callbacks, log)
    distilled_dirs, distilled = train_role(dataset, student_config(options.student, overrides, {}, distilled=True),
                                           teacher_dir, distilled_dir, seeds, callbacks, log)
    comparison = compare_students(dataset, distilled_dirs, baseline_dirs, teacher_dir)
    write_json(workdir / "comparison.json", comparison)

    baseline_seeds, distilled_seeds = seed_summary(baseline), seed_summary(distilled)
    summary = {
        "protocol": {**baseline[0]["protocol"], "seed": seeds[0] if len(seeds) == 1 else seeds},
        "most_popular": {s: most_popular_metrics(dataset.train, dataset.split(s), dataset.num_items)
                         for s in ("val", "test")},
        "teacher": {s: m for s, m in read_json(teacher_dir / "metrics.json").items() if s in ("val", "test")},
        "baseline": baseline_seeds["metrics"],
        "distilled": distilled_seeds["metrics"],
        "seeds": seeds,
        "uncertainty": {"baseline": baseline_seeds["uncertainty"], "distilled": distilled_seeds["uncertainty"]},
        "lam": distilled[0]["lam"],
        "lam_auto": distilled[0]["lam_auto"],
        "latency": {**{role: student_latency(TrainedStudent.load(dirs[0]).model, dataset.test)
                       for role, dirs in (("baseline", baseline_dirs), ("distilled", distilled_dirs))},
                    # the teacher's single-history latency, where it measured one (latency.json)
                    **({"teacher": read_json(teacher_dir / "latency.json")}
                       if (teacher_dir / "latency.json").is_file() else {})},
        "comparison": comparison,
    }
    write_json(workdir / "summary.json", summary)
    log(format_summary(summary, options.student))
    return summary


def format_summary(summary: dict, student: str = "student") -> str:
    lines = [f"{'test split':<22}" + "".join(f"{m:>10}" for m in REPORTED)]
    for role in ("most_popular", "teacher", "baseline", "distilled"):
        row = summary[role].get("test", {})
        lines.append(f"{role:<22}" + "".join(f"{row.get(m, float('nan')):>10.4f}" for m in REPORTED))
    for role, lat in summary["latency"].items():
        lines.append(f"latency {role:<14} p50 {lat['p50_ms']:.2f} ms  p95 {lat['p95_ms']:.2f} ms  "
                     f"{lat.get('throughput') or float('nan'):.0f} users/s at batch {lat.get('batch_size', 1)}  "
                     f"{lat.get('device', '')}")
    seeds = summary["seeds"]
    if len(seeds) > 1:
        lines[0] += f"   (students: the mean of seeds {', '.join(map(str, seeds))})"
        for role in ("baseline", "distilled"):
            test = summary["uncertainty"][role]["test"]
            lines.append(f"{role} test, t interval over {len(seeds)} seeds: " + ", ".join(
                f"{m} {test[m]['mean']:.4f} [95% CI {test[m]['ci95'][0]:.4f}, {test[m]['ci95'][1]:.4f}]"
                for m in REPORTED[2:]))
    lam = summary["lam"]
    choice = summary.get("lam_auto") or {}
    lines.append(f"lambda_d chosen on {choice.get('selected_on', 'val')}: {lam} "
                 f"(val ndcg@20 per lambda_d: {choice.get('val_ndcg@20')})")
    if lam == 0:
        lines.append("note: the teacher did not improve the student on val; the distilled student is the baseline one")
    lines.append(f"protocol: {summary['protocol']}")
    if summary.get("comparison"):
        lines.append(format_verdict(summary["comparison"], student, summary.get("lam"), summary.get("latency")))
    return "\n".join(lines)


def format_verdict(comparison: dict, student: str = "student", lam=None, latency: dict | None = None) -> str:
    """One line: the distilled student's gain over the plain one (and the teacher), its paired
    bootstrap interval and Wilcoxon p-value, on the test users, from `compare_students`; then the
    lambda_d used and, with `latency` ({role: {p50_ms}}), the p50 latency against the teacher's."""
    versus = comparison["distilled_vs_baseline"]
    counts = {role: len(seeds) for role, seeds in comparison["seeds"].items()}
    seeds = (f"{counts['distilled']} seed{'s' * (counts['distilled'] != 1)}" if len(set(counts.values())) == 1
             else f"{counts['distilled']} distilled / {counts['baseline']} plain seeds")
    line = (f"distilled {student} vs plain: {_gain(versus)} {versus['metric'].upper()}{_gain_ci(versus)}, "
            f"{_p(versus['p_value'])} (Wilcoxon, {versus['n_users']} {versus['split']} users, {seeds})")
    teacher = comparison.get("distilled_vs_teacher")
    if teacher:
        line += f"; vs teacher {_gain(teacher)}{_gain_ci(teacher)}, {_p(teacher['p_value'])}"
    if lam is not None:
        line += f"; λ = {lam:g}" if isinstance(lam, (int, float)) else f"; λ = {lam}"
    latency = latency or {}
    student_ms = (latency.get("distilled") or {}).get("p50_ms")
    teacher_ms = (latency.get("teacher") or {}).get("p50_ms")
    if student_ms and teacher_ms:
        line += f"; p50 latency {student_ms:.2f} ms vs teacher {teacher_ms:.1f} ms ({teacher_ms / student_ms:,.0f}x)"
    return line


def _gain(result: dict) -> str:
    return "n/a" if result["gain_pct"] is None else f"{result['gain_pct']:+.1f}%"


def _gain_ci(result: dict) -> str:
    if result["ci95_pct"] is None:
        return f" ({result['reason']})" if result.get("reason") else ""
    lo, hi = result["ci95_pct"]
    return f" [95% CI {lo:+.1f}, {hi:+.1f}]"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
