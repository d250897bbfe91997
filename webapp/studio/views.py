"""The dashboard: server-rendered pages over the same models, scoping and run logic as the REST
API. Every page needs a login; every object is looked up among the user's own (another user's run
or dataset is a 404). Charts get their data through `json_script`, drawn by the vendored Chart.js."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, F, FloatField, OuterRef, Subquery
from django.db.models.functions import NullIf
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework.authtoken.models import Token

from webapp.studio import services, stages
from webapp.studio.forms import DatasetUploadForm, RunForm, config_schema
from webapp.studio.models import Artifact, Dataset, EpochMetric, Metric, Run, RunEvent
from webapp.studio.serializers import parse_id, text_problem
from webapp.studio.throttles import check_rate, too_many

ROLES = ("teacher", "baseline", "distilled", "most_popular")
ROLE_LABELS = {"teacher": "Teacher", "baseline": "Student, baseline", "distilled": "Student, distilled",
               "most_popular": "Most popular"}
# The teacher is named by what it is: only BIGRec is an LLM.
TEACHER_KINDS = {"bigrec": "LLM, BIGRec", "semantic": "sentence encoder", "titles": "TF-IDF on titles"}
TEACHER_LABELS = {kind: f"Teacher ({what})" for kind, what in TEACHER_KINDS.items()}


def role_labels(run: Run) -> dict[str, str]:
    kind = (run.config.get("teacher") or {}).get("kind")
    return {**ROLE_LABELS, "teacher": TEACHER_LABELS.get(kind, ROLE_LABELS["teacher"])}
CUTOFFS = (1, 5, 10, 20, 50)
SORTS = {"id": "id", "name": "name", "dataset": "dataset__name", "status": "status", "student": "config__student",
         "teacher": "config__teacher__kind", "created": "created_at", "ndcg": "distilled_ndcg", "gain": "gain"}
PAGE_SIZE = 50
# The runs list's filters and the lookup each one is (`tag`: services.filter_tag).
RUN_FILTERS = {"status": "status", "dataset": "dataset_id", "student": "config__student",
               "teacher": "config__teacher__kind", "tag": None, "q": "name__icontains"}


def _test_metric(role: str, metric: str = "ndcg", k: int = 20) -> Subquery:
    return Subquery(Metric.objects.filter(run=OuterRef("pk"), role=role, split="test", metric=metric, k=k)
                    .values("value")[:1], output_field=FloatField())


def runs_with_scores(user):
    """The user's runs with the distilled student's test NDCG@20 and its gain over the baseline student (%)."""
    return (Run.objects.filter(owner=user).select_related("dataset")
            .annotate(distilled_ndcg=_test_metric("distilled"), baseline_ndcg=_test_metric("baseline"))
            .annotate(gain=(F("distilled_ndcg") - F("baseline_ndcg")) * 100.0 / NullIf(F("baseline_ndcg"), 0.0)))


def _metric_values(run: Run) -> dict:
    """{(role, split, metric, k): value} of a run (metrics prefetched or not)."""
    return {(m.role, m.split, m.metric, m.k): m.value for m in run.metrics.all()}


# ----------------------------------------------------------------------------- overview

@login_required
def overview(request):
    runs = Run.objects.filter(owner=request.user)
    counts = dict(runs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    recent = list(runs_with_scores(request.user).order_by("-created_at", "-id")[:8])
    best = (runs_with_scores(request.user).filter(status=Run.Status.SUCCEEDED, distilled_ndcg__isnull=False)
            .order_by(F("distilled_ndcg").desc(nulls_last=True))[:5])
    return render(request, "studio/overview.html", {
        "counts": [(s, counts.get(s, 0)) for s in Run.Status.values], "total": sum(counts.values()),
        "recent": recent, "best": list(best), "datasets": Dataset.objects.filter(owner=request.user).count(),
        "live_ids": [r.pk for r in recent if r.status not in Run.FINISHED]})


# ----------------------------------------------------------------------------- runs

@login_required
def run_list(request):
    params = request.GET
    runs = runs_with_scores(request.user)
    filters = _run_filters(request)
    for name, value in filters.items():
        runs = services.filter_tag(runs, value) if name == "tag" else runs.filter(**{RUN_FILTERS[name]: value})
    sort = params.get("sort", "-created")
    key = sort.lstrip("-")
    if key not in SORTS:
        sort, key = "-created", "created"
    field = F(SORTS[key])
    runs = runs.order_by(field.desc(nulls_last=True) if sort.startswith("-") else field.asc(nulls_last=True), "-id")
    page = Paginator(runs, PAGE_SIZE).get_page(params.get("page"))
    from distill.config import STUDENTS
    columns = [("id", "#"), ("name", "Name"), ("dataset", "Dataset"), ("student", "Student"),
               ("teacher", "Teacher"), ("status", "Status"), ("ndcg", "NDCG@20"), ("gain", "Gain"),
               ("created", "Created")]
    return render(request, "studio/run_list.html", {
        "page": page, "filters": filters, "sort": sort, "columns": columns,
        "statuses": Run.Status.values, "students": STUDENTS, "teachers": list(services.teacher_kinds()),
        "datasets": Dataset.objects.filter(owner=request.user).only("id", "name"),
        "live_ids": [r.pk for r in page if r.status not in Run.FINISHED]})


def _run_filters(request) -> dict:
    """{filter: value} of the runs list's filters the query string gives; one the database cannot
    compare (a NUL character), an unknown status or a dataset that is not an id is left out, with
    a message saying why."""
    filters = {}
    for name in RUN_FILTERS:
        value = request.GET.get(name, "")
        if not value:
            continue
        problem = text_problem(value)
        if problem is None and name == "status" and value not in Run.Status.values:
            problem = f"unknown status {value!r}; one of {', '.join(Run.Status.values)}"
        if problem is None and name == "dataset" and parse_id(value) is None:
            problem = "not a dataset id"
        if problem:
            messages.error(request, f"The {name} filter is ignored: {problem}.")
        else:
            filters[name] = parse_id(value) if name == "dataset" else value
    return filters


@login_required
def run_new(request):
    initial = {}
    if request.method == "GET":
        source, dataset = parse_id(request.GET.get("from", "")), parse_id(request.GET.get("dataset", ""))
        if source is not None:
            initial = _initial_from(get_object_or_404(Run, pk=source, owner=request.user))
        elif dataset is not None:
            initial = {"dataset": dataset}
    form = RunForm(request.POST if request.method == "POST" else None, user=request.user, initial=initial)
    # A POST spends the budget of the API's POST /api/runs/ (webapp.studio.throttles).
    wait = check_rate(request, "runs") if request.method == "POST" else None
    if wait is not None:
        form.add_error(None, too_many("runs", wait))
    elif request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        config = data["config"]
        try:
            run = services.create_run(request.user, data["dataset"], data["name"], student=config["student"],
                                      teacher=config["teacher"], distill=config["distill"], train=config["train"],
                                      tags=data["tag_list"], seeds=data["seeds"])
        except services.ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Run {run.pk} queued.")
            return redirect("run-detail", run.pk)
    has_datasets = Dataset.objects.filter(owner=request.user).exclude(status=Dataset.Status.FAILED).exists()
    return render(request, "studio/run_new.html", {"form": form, "has_datasets": has_datasets},
                  status=429 if wait is not None else 400 if request.method == "POST" else 200)


def _initial_from(run: Run) -> dict:
    """The form's initial values from an existing run (\"run again with changes\")."""
    config = run.config
    teacher = dict(config.get("teacher", {}))
    kind = teacher.pop("kind", "semantic")
    backend = teacher.pop("backend", "hf") if kind == "bigrec" else kind
    initial = {"name": f"{run.name} (copy)", "dataset": run.dataset_id, "tags": ", ".join(run.tags),
               "student": config.get("student", "sasrec"), "teacher_backend": backend,
               "seeds": len(config.get("seeds") or [0])}
    teacher.pop("budget_from", None)     # set by a study that sweeps the budget, not by the user
    for key in ("model", "adapter", "k", "shards", "exclude_history", "budget"):
        if key in teacher:
            initial[f"teacher_{key}"] = teacher.pop(key)
    if teacher:
        import json
        initial["teacher_extra"] = json.dumps(teacher)
    for section in ("train", "distill"):
        for key, value in (config.get(section) or {}).items():
            initial[f"{section}__{key}"] = value
    return initial


def _pct(value) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def _verdict(run: Run, comparison: dict, chosen: dict, latency: dict) -> list[str]:
    """The run's answer in a few lines: the paired gain with its CI and p-value (vs plain, vs
    teacher) over the run's seeds, what training chose and why it stopped, and the latency saved."""
    lines = []
    labels = role_labels(run)
    student = run.config.get("student", "student")
    seeds = len(run.config.get("seeds") or [0])
    over = f", over {seeds} seed{'s' * (seeds != 1)}"
    for key, against in (("distilled_vs_baseline", "the plain student"), ("distilled_vs_teacher", "the teacher")):
        c = comparison.get(key)
        if c and c.get("gain_pct") is not None:
            lo, hi = c["ci95_pct"]
            lines.append(f"Distilled {student} vs {against}: {_pct(c['gain_pct'])} {c['metric'].upper()} "
                         f"[95% CI {_pct(lo)}, {_pct(hi)}], p = {c['p_value']:.3g} "
                         f"({c['test']}, {c['n_users']} users{over})")
    for role in ("baseline", "distilled"):
        pick = chosen.get(role)
        if pick and pick.get("best_epoch") is not None:
            stop = {"patience": "early stopping (patience)", "epochs": "the epoch cap: raise epochs"}.get(
                pick.get("stopped_by") or "", "not recorded")
            lam = f"λ = {pick['lam']}, " if role == "distilled" and pick.get("lam") is not None else ""
            best = pick["best_epoch"]
            best = ", ".join(map(str, best)) if isinstance(best, list) else best
            lines.append(f"{labels[role]}: {lam}best epoch {best} of {pick.get('epochs')}, stopped by {stop}")
    if "teacher" in latency and "distilled" in latency and latency["distilled"].p50_ms > 0:
        lines.append(f"p50 latency {latency['distilled'].p50_ms:.2f} ms vs {labels['teacher'].lower()} "
                     f"{latency['teacher'].p50_ms:.1f} ms "
                     f"({latency['teacher'].p50_ms / latency['distilled'].p50_ms:.0f}× faster)")
    return lines


@login_required
def run_detail(request, pk: int):
    run = get_object_or_404(Run.objects.select_related("dataset"), pk=pk, owner=request.user)
    labels = role_labels(run)
    values = _metric_values(run)
    cutoffs = sorted({k for (_, split, _, k) in values if split == "test"})
    table = []
    for role in ROLES:
        row = [values.get((role, "test", metric, k)) for k in cutoffs for metric in ("hr", "ndcg")]
        if any(v is not None for v in row):
            table.append({"role": role, "label": labels[role], "values": row})
    gain = [_gain(values.get(("distilled", "test", metric, k)), values.get(("baseline", "test", metric, k)))
            for k in cutoffs for metric in ("hr", "ndcg")]
    retained = [_ratio(values.get(("distilled", "test", metric, k)), values.get(("teacher", "test", metric, k)))
                for k in cutoffs for metric in ("hr", "ndcg")]
    latency = {row.role: row for row in run.latency.all()}
    speedup = None
    if "teacher" in latency and "distilled" in latency and latency["distilled"].p50_ms > 0:
        speedup = latency["teacher"].p50_ms / latency["distilled"].p50_ms
    events = list(RunEvent.objects.filter(run=run).order_by("-at", "-id")[:50])[::-1]
    from webapp.studio.serializers import chosen_of
    chosen = chosen_of(run)
    return render(request, "studio/run_detail.html", {
        "verdict": _verdict(run, run.analysis.get("comparison") or {}, chosen, latency),
        "teacher_label": labels["teacher"],
        "teacher_kind": TEACHER_KINDS.get((run.config.get("teacher") or {}).get("kind"), "teacher"), "capped": [labels[r] for r, c in chosen.items() if c.get("stopped_by") == "epochs"],
        "lam_table": _lam_table((chosen.get("distilled") or {}).get("lam_auto")),
        "seed_rows": _seed_rows(run, labels), "report": run.analysis.get("report"),
        "run": run, "stages": _stages(run), "cutoffs": cutoffs, "table": table, "gain": gain,
        "retained": retained, "has_teacher": any(r["role"] == "teacher" for r in table),
        "latency": [latency[r] for r in ("teacher", "baseline", "distilled") if r in latency],
        "speedup": speedup, "overlap": run.analysis.get("overlap"),
        "artifacts": [{"pk": a.pk, "kind": a.kind, "name": Path(a.path).name, "size": a.size, "sha256": a.sha256}
                      for a in run.artifacts.order_by("kind", "path")],
        "events": events, "config": run.config, "export_roles": services.SERVED_ROLES,
        "chart_data": {"curves": _curves(run), "latency": [
            {"role": r, "label": labels[r], "p50": latency[r].p50_ms, "p95": latency[r].p95_ms}
            for r in ("teacher", "baseline", "distilled") if r in latency]},
        "live": run.status not in Run.FINISHED,
    })


def _lam_table(choice: dict | None) -> list[dict]:
    """The lam=auto candidates: val and test NDCG@20 of each lambda_d, the chosen one marked."""
    if not choice:
        return []
    val, test = choice.get("val_ndcg@20") or {}, choice.get("test_ndcg@20") or {}
    return [{"lam": lam, "val": val.get(str(lam)), "test": test.get(str(lam)), "chosen": lam == choice.get("chosen")}
            for lam in choice.get("grid", [])]


def _seed_rows(run: Run, labels: dict) -> list[dict]:
    """With several seeds: each student role's test mean and t interval (NDCG@20, HR@20)."""
    if len(run.config.get("seeds") or [0]) < 2:
        return []
    rows = []
    for role, splits in (run.analysis.get("uncertainty") or {}).items():
        test = splits.get("test") or {}
        rows.append({"label": labels.get(role, role), "cells": [test.get(m) for m in ("ndcg@20", "hr@20")]})
    return rows


def _gain(new, old):
    return None if new is None or old is None or old == 0 else (new - old) / old * 100


def _ratio(new, ref):
    return None if new is None or ref is None or ref == 0 else new / ref * 100


def _curves(run: Run) -> list[dict]:
    """One series per (role, lambda, seed): loss and val NDCG@20 per epoch."""
    series: dict = {}
    several = len(run.config.get("seeds") or [0]) > 1
    for row in EpochMetric.objects.filter(run=run).order_by("role", "lam", "seed", "epoch"):
        key = (row.role, row.lam, row.seed)
        label = ROLE_LABELS.get(row.role, row.role) + (f", λ={row.lam:g}" if row.role == "distilled"
                                                         and row.lam is not None else "")
        label += f", seed {row.seed}" if several else ""
        entry = series.setdefault(key, {"role": row.role, "label": label, "epoch": [], "loss": [], "ndcg": []})
        entry["epoch"].append(row.epoch)
        entry["loss"].append(row.loss)
        entry["ndcg"].append((row.val or {}).get("ndcg@20"))
    return list(series.values())


def _stages(run: Run) -> list[dict]:
    out = []
    current = stages.STAGE_NAMES.index(run.stage) if run.stage in stages.STAGE_NAMES else -1
    for index, stage in enumerate(stages.STAGE_NAMES):
        times = run.stage_times.get(stage) or {}
        if "finished" in times or (run.status == Run.Status.SUCCEEDED):
            state = "done"
        elif index == current and run.status == Run.Status.RUNNING:
            state = "running"
        elif index == current and run.status in (Run.Status.FAILED, Run.Status.CANCELLED):
            state = run.status
        else:
            state = "pending"
        out.append({"name": stage, "state": state, "started": times.get("started"),
                    "seconds": times.get("seconds")})
    return out


@login_required
@require_GET
def run_live(request):
    """Status and progress of the user's runs ?ids=1,2 (the pages poll this while runs are live)."""
    ids = [pk for pk in (parse_id(part.strip()) for part in request.GET.get("ids", "").split(",")) if pk is not None]
    ids = ids[:200]
    rows = (Run.objects.filter(owner=request.user, pk__in=ids).annotate(epoch_count=Count("epochs"))
            .values("id", "status", "progress", "stage", "stage_message", "epoch_count"))
    return JsonResponse({"runs": list(rows)})


@login_required
@require_GET
def run_curves(request, pk: int):
    """The learning curves as the detail page draws them (it refetches them while the run trains)."""
    run = get_object_or_404(Run, pk=pk, owner=request.user)
    return JsonResponse({"curves": _curves(run)})


@login_required
@require_POST
def run_action(request, pk: int, action: str):
    run = get_object_or_404(Run, pk=pk, owner=request.user)
    try:
        if action == "cancel":
            services.cancel_run(run)
            messages.success(request, f"Run {pk}: cancel requested.")
        elif action == "retry":
            wait = check_rate(request, "runs")   # the budget of the API's POST /api/runs/<id>/retry/
            if wait is not None:
                messages.error(request, f"Run {pk} not retried, {too_many('runs', wait)}.")
                page = run_detail(request, pk)
                page.status_code = 429
                return page
            services.retry_run(run)
            messages.success(request, f"Run {pk} queued again.")
        elif action == "delete":
            services.delete_run(run)
            messages.success(request, f"Run {pk} deleted.")
            return redirect("run-list")
        else:
            raise Http404(action)
    except services.ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("run-detail", pk)


@login_required
def artifact_download(request, pk: int, artifact: int):
    row = get_object_or_404(Artifact, pk=artifact, run_id=pk, run__owner=request.user)
    path = Path(row.path).resolve()
    root = Path(settings.STORAGE_ROOT).resolve()
    if root not in path.parents or not path.is_file():
        raise Http404("the artifact's file is no longer on disk")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"run{pk}-{row.kind}-{path.name}")


@login_required
def run_compare(request):
    parts = [part for part in request.GET.get("ids", "").replace(" ", "").split(",") if part]
    ids = list(dict.fromkeys(parse_id(part) for part in parts))
    error = None
    if None in ids:
        ids.remove(None)
        error = "Run ids are whole numbers, e.g. ?ids=3,7 (tick the runs in the runs list)."
    elif not 2 <= len(ids) <= 10:
        error = "Select 2 to 10 runs to compare (tick them in the runs list)."
    runs = {r.pk: r for r in Run.objects.filter(owner=request.user, pk__in=ids).prefetch_related("metrics", "latency")}
    if len(runs) != len(ids):
        raise Http404("no such run among yours")
    if error:
        return render(request, "studio/run_compare.html", {"error": error}, status=400)
    runs = [runs[i] for i in ids]
    from webapp.studio.stages import train_config
    flat = []
    for run in runs:
        config = {"student": run.config.get("student"), "dataset": run.dataset_id}
        config.update({f"teacher.{k}": v for k, v in run.config.get("teacher", {}).items()})
        try:
            effective = train_config(run, distilled=True).to_dict()
        except Exception:   # a config written by an older version: show what is stored
            effective = {**run.config.get("train", {}), **run.config.get("distill", {})}
        effective.pop("student", None)
        if effective.get("lam") == "auto":   # the parallel axis shows the lambda_d chosen, a number
            effective["lam"] = (stages.chosen(run).get("distilled") or {}).get("lam", "auto")
        config.update(effective)
        flat.append(config)
    keys = list(dict.fromkeys(k for config in flat for k in config))
    diff = [{"key": k, "values": [c.get(k) for c in flat],
             "differs": len({repr(c.get(k)) for c in flat}) > 1} for k in keys]
    metrics = []
    for run in runs:
        values = _metric_values(run)
        latency = {row.role: row.p50_ms for row in run.latency.all()}
        metrics.append({"run": run, "values": values, "latency": latency})
    rows = []
    for role in ("distilled", "baseline", "teacher"):
        for metric in ("ndcg", "hr"):
            for k in (10, 20):
                cells = [m["values"].get((role, "test", metric, k)) for m in metrics]
                if any(c is not None for c in cells):
                    best = max((c for c in cells if c is not None), default=None)
                    rows.append({"label": f"{ROLE_LABELS[role]} {metric.upper()}@{k}", "cells": cells, "best": best})
    gains = [_gain(m["values"].get(("distilled", "test", "ndcg", 20)), m["values"].get(("baseline", "test", "ndcg", 20)))
             for m in metrics]
    p50 = [m["latency"].get("distilled") for m in metrics]
    varying = [d["key"] for d in diff if d["differs"] and d["key"] != "dataset"]
    chart = {
        "runs": [f"#{r.pk} {r.name}" for r in runs],
        "cutoffs": list(CUTOFFS),
        "ndcg": [[m["values"].get(("distilled", "test", "ndcg", k)) for k in CUTOFFS] for m in metrics],
        "parallel": _parallel(flat, varying, [m["values"].get(("distilled", "test", "ndcg", 20)) for m in metrics]),
    }
    return render(request, "studio/run_compare.html", {
        "runs": runs, "ids": ",".join(map(str, ids)), "rows": rows, "gains": gains, "p50": p50, "diff": diff,
        "only_diff": request.GET.get("diff") == "1", "chart_data": chart})


def _number(value):
    """A config value as a number where it is one ("0.7" -> 0.7, the way TrainConfig keeps lam)."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else value
    return value


def _parallel(configs: list[dict], keys: list[str], target: list) -> dict:
    """Parallel coordinates: each varying hyperparameter and NDCG@20 scaled to 0..1 per axis."""
    axes = []
    for key in keys[:12]:
        raw = [_number(c.get(key)) for c in configs]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw if v is not None)
        if numeric and any(v is not None for v in raw):
            values = [float(v) if v is not None else math.nan for v in raw]
            labels = [f"{v:g}" if not math.isnan(v) else "–" for v in values]
        else:
            categories = sorted({repr(v) for v in raw})
            values = [float(categories.index(repr(v))) for v in raw]
            labels = [str(v) for v in raw]
        axes.append({"name": key, "values": values, "labels": labels})
    values = [float(v) if v is not None else math.nan for v in target]
    axes.append({"name": "NDCG@20", "values": values, "labels": [f"{v:.4f}" if not math.isnan(v) else "–" for v in values]})
    for axis in axes:
        array = np.array(axis["values"], dtype=float)
        low, high = np.nanmin(array) if np.isfinite(array).any() else 0.0, np.nanmax(array) if np.isfinite(array).any() else 1.0
        span = (high - low) or 1.0
        axis["scaled"] = [None if math.isnan(v) else round((v - low) / span, 4) for v in array.tolist()]
        del axis["values"]
    return {"axes": axes}


# ----------------------------------------------------------------------------- studies

@login_required
@require_GET
def study_list(request):
    from webapp.studio.models import Study
    from webapp.studio.studies import status_of
    studies = list(Study.objects.filter(owner=request.user).select_related("dataset").prefetch_related("runs")[:200])
    return render(request, "studio/study_list.html", {
        "studies": [{"study": s, "status": status_of(s, list(s.runs.all())), "points": len(s.points)} for s in studies]})


@login_required
@require_GET
def study_detail(request, pk: int):
    """A study: every point's status and val/test metrics (sortable), the best point chosen on val,
    and a parallel-coordinates chart of the points (numeric axes, the chosen point drawn bold)."""
    from webapp.studio.models import Study
    from webapp.studio.studies import summary
    study = get_object_or_404(Study.objects.select_related("dataset"), pk=pk, owner=request.user)
    state = summary(study)
    keys = list(dict.fromkeys(k for point in study.points for k in point))
    best = (state["best"] or {}).get("index")
    rows = [{**child, "values": [child["point"].get(k) for k in keys], "best": child["index"] == best,
             "cells": [child["val"].get("ndcg@20"), child["val"].get("hr@20"), child["test"].get("ndcg@20"),
                       child["test"].get("hr@20")]} for child in state["children"]]
    configs = [{k: child["point"].get(k) for k in keys} for child in state["children"]]
    parallel = _parallel(configs, keys, [child["val"].get("ndcg@20") for child in state["children"]])
    parallel["axes"][-1]["name"] = "val NDCG@20"
    chart = {"points": [f"#{c['index']} {_point_label(c['point'])}" for c in state["children"]], "best": best,
             "parallel": parallel}
    return render(request, "studio/study_detail.html", {
        "study": study, "state": state, "keys": keys, "rows": rows, "best": state["best"], "chart_data": chart,
        "best_view": _best_view(state["best"], study.metric),
        "live": state["status"] in ("queued", "running")})


def _best_view(best: dict | None, metric: str) -> dict:
    if not best:
        return {}
    interval = (best.get("uncertainty") or {}).get("ndcg@20") or {}
    return {"val": best["val"].get(metric), "test": best["test"].get("ndcg@20"),
            "ci": interval.get("ci95") if interval.get("n", 1) > 1 else None}


def _point_label(point: dict) -> str:
    from distill.sweep import point_label
    return point_label(point)


# ----------------------------------------------------------------------------- datasets

@login_required
def dataset_list(request):
    datasets = list(Dataset.objects.filter(owner=request.user).annotate(run_count=Count("runs")))
    processing = any(d.status == Dataset.Status.PROCESSING for d in datasets)
    return render(request, "studio/dataset_list.html", {"datasets": datasets, "processing": processing})


@login_required
def dataset_upload(request):
    """The upload form; the browser posts it with XHR (progress bar) and gets JSON back, a plain
    form post gets the page again with the errors next to the fields."""
    wants_json = request.headers.get("x-requested-with") == "XMLHttpRequest"
    form = DatasetUploadForm()
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES)
        errors: dict = {}
        wait = check_rate(request, "uploads")   # the budget of the API's POST /api/datasets/
        if wait is not None:
            message = too_many("uploads", wait)
            if wants_json:
                return JsonResponse({"ok": False, "errors": {"__all__": [message]}}, status=429)
            form.add_error(None, message)
            return render(request, "studio/dataset_upload.html", {"form": form, "limit_mb": settings.UPLOAD_MAX_MB},
                          status=429)
        if form.is_valid():
            data = form.cleaned_data
            try:
                dataset = services.create_dataset(
                    request.user, data["name"], data.get("format") or None, data.get("files") or [],
                    roles={role: data.get(role) for role in services.LEGACY_ROLES},
                    options={name: data.get(name) for name in form.option_names})
            except services.ServiceError as exc:   # a bad file name, a taken name, a bad option
                errors = {("__all__" if field == "detail" else field): [message]
                          for field, message in exc.errors.items()}
            else:
                url = reverse("dataset-detail", args=[dataset.pk])
                if wants_json:
                    return JsonResponse({"ok": True, "url": url, "id": dataset.pk})
                messages.success(request, f"Dataset {dataset.name} is uploaded and being prepared.")
                return redirect(url)
        else:
            errors = {k: [str(e) for e in v] for k, v in form.errors.items()}
        if wants_json:
            # 200 with ok=false: a form answer the page shows next to the fields (a 4xx here would
            # also land in the browser's console as a failed resource).
            return JsonResponse({"ok": False, "errors": errors})
        for field, problems in errors.items():
            for problem in problems:
                form.add_error(None if field in ("__all__", "detail", "non_field_errors") or field not in form.fields
                               else field, problem)
        return render(request, "studio/dataset_upload.html", {"form": form, "limit_mb": settings.UPLOAD_MAX_MB},
                      status=400)
    return render(request, "studio/dataset_upload.html", {"form": form, "limit_mb": settings.UPLOAD_MAX_MB})


@login_required
def dataset_detail(request, pk: int):
    dataset = get_object_or_404(Dataset, pk=pk, owner=request.user)
    profile = dataset_profile(dataset) if dataset.status == Dataset.Status.READY else None
    runs = runs_with_scores(request.user).filter(dataset=dataset).order_by("-created_at")[:20]
    return render(request, "studio/dataset_detail.html", {
        "dataset": dataset, "stats": dataset.stats, "profile": profile, "runs": runs,
        "chart_data": {"histogram": profile["histogram"]} if profile else {}})


def dataset_profile(dataset: Dataset) -> dict:
    """`distill.data.profile.dataset_profile` of the prepared files, once per dataset content (cached)."""
    key = f"dataset-profile:{dataset.content_hash or dataset.pk}:{dataset.prepared_dir}"
    profile = cache.get(key)
    if profile is None:
        from distill.data import PreparedDataset
        from distill.data.profile import dataset_profile as profile_of
        profile = profile_of(PreparedDataset.load(dataset.prepared_dir))
        cache.set(key, profile, 3600)
    return profile


# ----------------------------------------------------------------------------- account

@login_required
def account(request):
    if request.method == "POST" and request.POST.get("action") == "rotate-token":
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        messages.success(request, "A new API token was created; the old one no longer works.")
        return redirect("account")
    token, _ = Token.objects.get_or_create(user=request.user)
    return render(request, "studio/account.html", {"token": token.key,
                                                   "runs": Run.objects.filter(owner=request.user).count(),
                                                   "datasets": Dataset.objects.filter(owner=request.user).count(),
                                                   "schema_fields": len(config_schema())})
