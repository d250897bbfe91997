"""Sweeps as one job: a study is one child run per point of a grid (or a random search) over a base
run config. The children share one teacher computation: the first child computes it while the
others wait for it (`Run.waiting_for`), and its end of the teacher stage starts them, so each finds
the teacher cached. The best point is chosen on val (`distill.sweep.best_on_val`), never on test.

Grid keys name where a point's value goes in the run config: `student`, `distill.<option>`,
`train.<option>`, or `teacher.budget`. The teacher is the one thing the children share, so only its
budget may vary: the teacher is computed once at the study's largest budget (`budget_from` in every
child's teacher) and each point's budget is cut from it (docs/method.md §2.6), so a budget curve costs
one teacher.
"""

from __future__ import annotations

import copy
import logging

from django.db import transaction
from django.utils import timezone

from webapp.studio import stages
from webapp.studio.models import Dataset, Metric, Run, Study
from webapp.studio.services import ServiceError, usable_dataset, validate_config

log = logging.getLogger(__name__)

SECTIONS = ("distill", "train")
MAX_STUDY_RUNS_SEEDS = 200   # points x seeds: the trainings one study may ask for


def point_key_problem(key: str) -> str | None:
    if key == "student":
        return None
    if key == "teacher.budget":
        return None
    section, _, option = str(key).partition(".")
    if section == "teacher":
        return (f"{key}: a study shares one teacher across its points, so only teacher.budget may vary; vary "
                "the rest of the teacher in separate studies")
    if section not in SECTIONS or not option or "." in option:
        return f"{key}: use student, distill.<option> or train.<option> (e.g. distill.lam, train.lr)"
    return None


def apply_point(base: dict, point: dict) -> dict:
    """The run config of one point: `base` with each key's value put in its section."""
    config = copy.deepcopy(base)
    for key, value in point.items():
        if key == "student":
            config["student"] = value
        else:
            section, _, option = key.partition(".")
            config.setdefault(section, {})[option] = value
    return config


def expand(grid: dict | None, random: dict | None) -> tuple[dict, list[dict]]:
    """({"grid": ...} or {"random": ...}, the points); ServiceError naming the field."""
    from distill.errors import ConfigError
    from distill.sweep import expand_grid, random_points
    if (grid is None) == (random is None):
        raise ServiceError("grid", "give either grid {key: [values]} or random {n, space, seed}")
    field = "grid" if grid is not None else "random"
    if not isinstance(grid if grid is not None else random, dict):
        raise ServiceError(field, "must be a JSON object")
    keys = grid if grid is not None else random.get("space")
    if not isinstance(keys, dict):
        raise ServiceError(field, 'random needs "space": {key: [choices] or {"low": a, "high": b}}')
    for key in keys:
        problem = point_key_problem(key)
        if problem:
            raise ServiceError(field, problem)
    try:
        if grid is not None:
            return {"grid": grid}, expand_grid(grid)
        unknown = sorted(set(random) - {"n", "space", "seed"})
        if unknown:
            raise ServiceError("random", f"unknown key(s) {', '.join(unknown)}; known: n, space, seed")
        seed = random.get("seed", 0)
        return {"random": {"n": random.get("n"), "space": random["space"], "seed": seed}}, \
            random_points(random["space"], random.get("n"), seed)
    except ConfigError as exc:
        raise ServiceError(field, str(exc)) from None


def create_study(user, dataset: Dataset | int, name: str, base: dict, *, grid: dict | None = None,
                 random: dict | None = None, tags: list[str] | None = None) -> Study:
    """A study and its child runs (every point's config checked before any row is written); the
    first child is enqueued, the others wait for its teacher."""
    if not isinstance(base, dict):
        raise ServiceError("base", "a run config: {student, teacher, distill, train, seeds}")
    unknown = sorted(set(base) - {"student", "teacher", "distill", "train", "seeds", "seed_list"})
    if unknown:
        raise ServiceError("base", f"unknown key(s) {', '.join(unknown)}; known: student, teacher, distill, train, "
                                   "seeds, seed_list")
    raw = {"student": base.get("student", "sasrec"), "teacher": base.get("teacher", {}),
           "distill": base.get("distill", {}), "train": base.get("train", {})}
    seeds, seed_list = base.get("seeds", 1), base.get("seed_list")
    base_config = _checked("base", raw, seeds, seed_list)
    space, points = expand(grid, random)
    if len(points) * len(base_config["seeds"]) > MAX_STUDY_RUNS_SEEDS:
        raise ServiceError("grid", f"{len(points)} points x {len(base_config['seeds'])} seeds is more than "
                                   f"{MAX_STUDY_RUNS_SEEDS} trainings per role; give fewer points or seeds")
    configs = [_checked(f"point {i} ({_label(p)})", apply_point(raw, p), seeds, seed_list)
               for i, p in enumerate(points)]
    with transaction.atomic():
        dataset = usable_dataset(user, dataset, lock=True)
        if any("teacher.budget" in p for p in points):
            _share_the_largest_budget(configs, dataset)
        study = Study.objects.create(owner=user, dataset=dataset, name=name, base=base_config, space=space,
                                     points=points)
        ready = dataset.status == Dataset.Status.READY
        leader = None
        for i, (point, config) in enumerate(zip(points, configs)):
            run = Run.objects.create(
                owner=user, dataset=dataset, name=f"{name} #{i} {_label(point)}"[:200], tags=list(tags or []),
                config=config, study=study, study_index=i, waiting_for=leader, heartbeat=timezone.now(),
                stage_message=("" if leader is None and ready else
                               f"waiting for dataset {dataset.pk} to be prepared" if leader is None else
                               f"waiting for the study's teacher (run {leader.pk})"))
            leader = leader or run
        if ready:
            _launch(leader)
    return study


def _share_the_largest_budget(configs: list[dict], dataset: Dataset) -> None:
    """Set every point's `teacher.budget_from` to the study's largest budget (what the teacher is
    computed at); ServiceError when the budgets cannot be compared or one does not fit the data."""
    from distill.errors import ConfigError
    from distill.teacher.budget import budget_count
    budgets = [config["teacher"].get("budget") for config in configs]
    if any(b is None for b in budgets):
        raise ServiceError("grid", "teacher.budget: give every point a budget (a count or a fraction); the "
                                   "teacher is computed once at the largest")
    if any(config["teacher"].get("shards", 1) > 1 for config in configs):
        raise ServiceError("grid", "teacher.budget: a budget sweep computes its one teacher in one task; drop "
                                   "teacher.shards")
    instances = ((dataset.stats or {}).get("instances") or {}).get("train")
    if isinstance(instances, int):
        try:
            counts = [budget_count(b, instances) for b in budgets]
        except ConfigError as exc:
            raise ServiceError("grid", f"teacher.budget: {exc}") from None
    elif len({type(b) for b in budgets}) == 1:
        counts = budgets
    else:
        raise ServiceError("grid", "teacher.budget: the dataset is still being prepared, so counts and fractions "
                                   "cannot be compared; give the budgets all as counts or all as fractions")
    largest = budgets[max(range(len(budgets)), key=lambda i: counts[i])]
    for config in configs:
        config["teacher"]["budget_from"] = largest


def _checked(where: str, config: dict, seeds, seed_list) -> dict:
    try:
        return validate_config(config["student"], config["teacher"], config["distill"], config["train"],
                               seeds, seed_list)
    except ServiceError as exc:
        raise ServiceError("base" if where == "base" else "grid", f"{where}: {exc.field}: {exc.message}") from None


def _label(point: dict) -> str:
    from distill.sweep import point_label
    return point_label(point)


def _launch(run: Run) -> None:
    from webapp.studio.services import _launch as launch
    launch(run)


def release_followers(run: Run, teacher_ready: bool = False) -> None:
    """Start the children that wait for `run`'s teacher. With `teacher_ready` (its teacher stage
    ended) all of them; when `run` failed in the teacher stage they fail with its reason (the same
    teacher would fail again); when it ended otherwise first, the next child takes its place."""
    with transaction.atomic():
        followers = list(Run.objects.select_for_update().filter(waiting_for=run, status=Run.Status.QUEUED)
                         .select_related("dataset").order_by("study_index", "pk"))
        if followers:
            _release(run, followers, teacher_ready)


def _release(run: Run, followers: list[Run], teacher_ready: bool) -> None:
    if teacher_ready:
        Run.objects.filter(pk__in=[f.pk for f in followers]).update(waiting_for=None, stage_message="")
        for follower in followers:
            follower.waiting_for = None
            _launch(follower)
        return
    if run.status == Run.Status.FAILED and run.stage == stages.FIRST:
        Run.objects.filter(pk__in=[f.pk for f in followers]).update(
            status=Run.Status.FAILED, finished_at=timezone.now(), waiting_for=None,
            error=f"the study's teacher failed in run {run.pk}: {run.error}"[:5000])
        return
    leader, rest = followers[0], followers[1:]
    Run.objects.filter(pk=leader.pk).update(waiting_for=None, stage_message="")
    Run.objects.filter(pk__in=[f.pk for f in rest]).update(
        waiting_for=leader, stage_message=f"waiting for the study's teacher (run {leader.pk})")
    if leader.dataset.status == Dataset.Status.READY:
        _launch(leader)


def cancel_study(study: Study) -> Study:
    """Cancel every unfinished child (a waiting one at once)."""
    from webapp.studio.services import cancel_run
    for run in study.runs.exclude(status__in=Run.FINISHED).order_by("-study_index"):
        try:
            cancel_run(run)
        except ServiceError:
            pass   # it finished meanwhile
    return study


def delete_study(study: Study) -> None:
    """Delete a finished study with its children and their files."""
    from webapp.studio.services import delete_run
    if study.runs.exclude(status__in=Run.FINISHED).exists():
        raise ServiceError("detail", f"study {study.pk} has unfinished runs; cancel it first")
    for run in study.runs.all():
        delete_run(run)
    study.delete()


# ----------------------------------------------------------------------------- reading

def status_of(study: Study, runs: list[Run] | None = None) -> str:
    runs = runs if runs is not None else list(study.runs.all())
    statuses = {run.status for run in runs}
    if statuses & {Run.Status.QUEUED, Run.Status.RUNNING}:
        return "running" if Run.Status.RUNNING in statuses or any(r.started_at for r in runs) else "queued"
    if Run.Status.SUCCEEDED in statuses:
        return "succeeded"
    return "cancelled" if statuses == {Run.Status.CANCELLED} else "failed"


def children(study: Study) -> list[dict]:
    """Every child: its point, status, val and test metrics (distilled student), the lambda_d it
    chose, whether its teacher came from the cache."""
    runs = list(study.runs.order_by("study_index"))
    metrics: dict[int, dict] = {}
    for row in Metric.objects.filter(run__in=runs, role="distilled"):
        metrics.setdefault(row.run_id, {}).setdefault(row.split, {})[f"{row.metric}@{row.k}"] = row.value
    out = []
    for run in runs:
        chosen = stages.chosen(run) if run.status == Run.Status.SUCCEEDED else {}
        out.append({"run": run.pk, "index": run.study_index, "point": study.points[run.study_index],
                    "status": run.status, "error": run.error, "val": metrics.get(run.pk, {}).get("val", {}),
                    "test": metrics.get(run.pk, {}).get("test", {}),
                    "lam": (chosen.get("distilled") or {}).get("lam"),
                    "teacher_cached": run.analysis.get("teacher_cached")})
    return out


def best_of(study: Study, rows: list[dict]) -> dict | None:
    """The succeeded child with the best val metric (distilled student), its test metrics, the t
    interval over its seeds and its paired comparison; None until one child succeeded."""
    from distill.errors import ConfigError
    from distill.sweep import best_on_val
    done = [row for row in rows if row["status"] == Run.Status.SUCCEEDED]
    try:
        position = best_on_val(done, study.metric)
    except ConfigError:
        return None
    row = done[position]
    run = Run.objects.get(pk=row["run"])
    return {**row, "selected_on": "val", "metric": study.metric,
            "uncertainty": (run.analysis.get("uncertainty", {}).get("distilled") or {}).get("test"),
            "comparison": (run.analysis.get("comparison") or {}).get("distilled_vs_baseline")}


def summary(study: Study) -> dict:
    rows = children(study)
    runs = list(study.runs.all())
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    teacher_runs = sum(1 for row in rows if row["teacher_cached"] is False)
    return {"status": status_of(study, runs), "counts": counts, "children": rows, "best": best_of(study, rows),
            "teacher_computations": teacher_runs}
