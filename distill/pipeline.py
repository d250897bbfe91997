"""The stages of one run, each resumable from its artifacts (docs/architecture.md §3, one run's path).

prepare -> teacher -> baseline student -> distilled student -> comparison; the teacher and the
students come from `distill.recipe`. A stage whose output directory is complete is skipped, so a
rerun (or a redelivered task) repeats no finished work.
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
from distill.recipe import ensure_student, ensure_teacher, student_config
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


def log(message: str) -> None:
    print(message, flush=True)


def run_pipeline(workdir: str | Path, options: PipelineOptions, callbacks: Callbacks | None = None) -> dict:
    workdir = Path(workdir)
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

    overrides = options.overrides or {}
    baseline = ensure_student(dataset, student_config(options.student, overrides, {}, distilled=False), None,
                              baseline_dir, callbacks, log=log)
    distilled = ensure_student(dataset, student_config(options.student, overrides, {}, distilled=True),
                               teacher_dir, distilled_dir, callbacks, log=log)

    summary = {
        "protocol": baseline["protocol"],
        "most_popular": {s: most_popular_metrics(dataset.train, dataset.split(s), dataset.num_items)
                         for s in ("val", "test")},
        "teacher": {s: m for s, m in read_json(teacher_dir / "metrics.json").items() if s in ("val", "test")},
        "baseline": {s: baseline[s] for s in ("val", "test")},
        "distilled": {s: distilled[s] for s in ("val", "test")},
        "lam": distilled["lam"],
        "lam_auto": distilled["lam_auto"],
        "latency": {role: student_latency(TrainedStudent.load(path).model, dataset.test)
                    for role, path in (("baseline", baseline_dir), ("distilled", distilled_dir))},
    }
    write_json(workdir / "summary.json", summary)
    log(format_summary(summary))
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"{'test split':<22}" + "".join(f"{m:>10}" for m in REPORTED)]
    for role in ("most_popular", "teacher", "baseline", "distilled"):
        row = summary[role].get("test", {})
        lines.append(f"{role:<22}" + "".join(f"{row.get(m, float('nan')):>10.4f}" for m in REPORTED))
    for role, lat in summary["latency"].items():
        lines.append(f"latency {role:<14} p50 {lat['p50_ms']:.2f} ms  p95 {lat['p95_ms']:.2f} ms  "
                     f"{lat['throughput']:.0f} users/s at batch {lat['batch_size']}  {lat['device']}")
    lam = summary["lam"]
    choice = summary.get("lam_auto") or {}
    lines.append(f"lambda_d chosen on val: {lam} (val ndcg@20 per lambda_d: {choice.get('val_ndcg@20')})")
    if lam == 0:
        lines.append("note: the teacher did not improve the student on val; the distilled student is the baseline one")
    lines.append(f"protocol: {summary['protocol']}")
    return "\n".join(lines)
