"""The service layer between HTTP and the models: upload and delete datasets, create, cancel, retry
and delete runs, recommend with a trained student. The REST API (`api.py`) and the dashboard
(`views.py`) both call these functions and map a `ServiceError` to a 400/404 or a form error, so
the two never disagree on what is valid (docs/architecture.md §1, §3)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from distill.errors import DistillError
from webapp.studio import stages
from webapp.studio.models import Dataset, Run

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service refuses: `field` names what is wrong (an input field, or "detail" for
    the request as a whole), `message` says why and how to fix it; kind "invalid" (a 400) or
    "not_found" (a 404). `others` holds more fields with their messages when several are wrong at once."""

    def __init__(self, field: str, message: str, kind: str = "invalid", others: dict[str, str] | None = None):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.kind, self.others = field, message, kind, dict(others or {})

    @property
    def errors(self) -> dict[str, str]:
        """{field: message} for every field this error is about."""
        return {self.field: self.message, **self.others}


# ----------------------------------------------------------------------------- datasets

FILE_ROLES = {
    "csv": {"interactions": "interactions.csv", "items": "items.csv"},
    "recbole": {"interactions": "dataset.inter", "items": "dataset.item"},
    "movielens": {"interactions": None, "items": None},   # names kept: u.data/u.item, ratings.dat/movies.dat ...
    "reference": {"train": "train_data.csv", "val": "val_data.csv", "test": "test_data.csv",
                  "statis": "data_statis.csv", "items": "items.csv"},
}
REQUIRED = {"csv": ("interactions", "items"), "recbole": ("interactions", "items"),
            "movielens": ("interactions", "items"), "reference": ("train", "val", "test", "statis")}
MOVIELENS_NAMES = {"u.data": "u.item", "ratings.dat": "movies.dat", "ratings.csv": "movies.csv"}
UPLOAD_ROLES = ("interactions", "items", "train", "val", "test", "statis")


def validate_upload(data: dict) -> None:
    """The files of an upload ({name, format, role: UploadedFile}) fit its format: the required
    roles are there, no other, none empty or over UPLOAD_MAX_MB, MovieLens files named as MovieLens
    names them. Raises ServiceError naming the file's role."""
    fmt = data["format"]
    missing = [role for role in REQUIRED[fmt] if role not in data]
    if missing:
        message = f"the {fmt} format needs this file"
        raise ServiceError(missing[0], message, others={role: message for role in missing[1:]})
    allowed = set(FILE_ROLES[fmt])
    unexpected = [role for role in UPLOAD_ROLES if role in data and role not in allowed]
    if unexpected:
        raise ServiceError(unexpected[0], f"the {fmt} format takes no {unexpected[0]} file",
                           others={role: f"the {fmt} format takes no {role} file" for role in unexpected[1:]})
    limit = settings.UPLOAD_MAX_MB * 1024 * 1024
    for role in allowed:
        upload = data.get(role)
        if upload is None:
            continue
        if upload.size > limit:
            raise ServiceError(role, f"{upload.name}: {upload.size / 1024 / 1024:.1f} MB is over the upload "
                                     f"limit of {settings.UPLOAD_MAX_MB} MB (UPLOAD_MAX_MB)")
        if upload.size == 0:
            raise ServiceError(role, f"{upload.name}: the file is empty")
    if fmt == "movielens":
        name = Path(data["interactions"].name).name
        if name not in MOVIELENS_NAMES:
            raise ServiceError("interactions", f"{name}: a MovieLens ratings file is named "
                                               f"{', '.join(MOVIELENS_NAMES)}; rename it or use format csv")
        expected = MOVIELENS_NAMES[name]
        if Path(data["items"].name).name != expected:
            raise ServiceError("items", f"{Path(data['items'].name).name}: with {name} the movies file is {expected}")


def create_dataset(user, data: dict) -> Dataset:
    """Validate an upload ({name, format, role: UploadedFile}), then store and prepare it. A bad
    file is a ServiceError naming its role; a reader's error (file, line, fix) one on "detail"."""
    validate_upload(data)
    if Dataset.objects.filter(owner=user, name=data["name"]).exists():
        raise ServiceError("name", f"you already have a dataset named {data['name']!r}; choose another name "
                                   "or delete that one")
    return store_and_prepare(user, data)


def store_and_prepare(user, data: dict) -> Dataset:
    """Save the files and prepare the dataset in a temporary directory; only a dataset that
    prepares cleanly gets its directory and its row (no orphan files, no half-created rows)."""
    from distill.data import PrepareOptions, prepare_dataset
    fmt = data["format"]
    root = Path(settings.STORAGE_ROOT) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
    try:
        upload_dir = work / "upload"
        upload_dir.mkdir()
        files = {}
        for role, stored in FILE_ROLES[fmt].items():
            if role not in data:
                continue
            name = stored or Path(data[role].name).name
            with open(upload_dir / name, "wb") as fh:
                for chunk in data[role].chunks():
                    fh.write(chunk)
            files[role] = name
        if fmt == "movielens":
            source, items = upload_dir / files["interactions"], upload_dir / files["items"]
        elif fmt == "reference":
            source, items = upload_dir, (upload_dir / files["items"]) if "items" in files else None
        else:
            source, items = upload_dir / files["interactions"], upload_dir / files["items"]
        try:
            prepared = prepare_dataset(fmt, source, work / "prepared", items=items, options=PrepareOptions())
        except DistillError as exc:
            raise ServiceError("detail", str(exc)) from exc
        with transaction.atomic():
            try:
                dataset = Dataset.objects.create(owner=user, name=data["name"], format=fmt, files=files,
                                                 status=Dataset.Status.READY, stats=prepared.stats,
                                                 content_hash=prepared.content_hash)
            except IntegrityError:
                raise ServiceError("name", f"you already have a dataset named {data['name']!r}") from None
            final = root / str(dataset.pk)
            work.rename(final)
            dataset.upload_dir, dataset.prepared_dir = str(final / "upload"), str(final / "prepared")
            dataset.save(update_fields=["upload_dir", "prepared_dir"])
        return dataset
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def delete_dataset(dataset: Dataset) -> None:
    """Delete a dataset no run uses, with its files."""
    if dataset.runs.exists():
        raise ServiceError("detail", f"dataset {dataset.pk} is used by {dataset.runs.count()} run(s); delete "
                                     "those runs first")
    root = Path(dataset.upload_dir).parent if dataset.upload_dir else None
    dataset.delete()
    if root is not None and root.is_dir():
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- run config

# The service's own teacher options, by kind: `shards` splits BIGRec inference into shard tasks on
# the gpu queue. The library (distill.teacher) never sees them.
SERVICE_OPTIONS = {"bigrec": {"shards"}}


def teacher_kinds() -> tuple[str, ...]:
    from distill.teacher import TEACHERS
    return tuple(TEACHERS)


def teacher_options(kind: str) -> set[str]:
    """The option names a teacher of `kind` takes in a run (the library's and the service's)."""
    from distill.teacher import TEACHERS
    return set(TEACHERS[kind].options) | SERVICE_OPTIONS.get(kind, set())


def teacher_spec(teacher: dict) -> dict:
    """A run's teacher section in the stored spelling {"kind": semantic|titles|bigrec, **options}
    (bigrec always with its generation `backend`, hf|vllm), by `distill.teacher.parse_teacher`; the
    old {"backend": ...} spelling is accepted. Raises ServiceError("teacher", ...) for an unknown
    kind or option."""
    from distill.errors import ConfigError
    from distill.teacher import parse_teacher
    options = dict(teacher)
    service = {key: options.pop(key) for key in list(options) if key in set().union(*SERVICE_OPTIONS.values())}
    try:
        spec = parse_teacher(options)
    except ConfigError as exc:
        raise ServiceError("teacher", str(exc)) from None
    unknown = sorted(set(service) - SERVICE_OPTIONS.get(spec["kind"], set()))
    if unknown:
        raise ServiceError("teacher", f"unknown option(s) {', '.join(map(repr, unknown))} for teacher kind "
                                      f"{spec['kind']!r}; known: {', '.join(sorted(teacher_options(spec['kind'])))}")
    return {**spec, **service}


def validate_config(student: str, teacher: dict, distill: dict, train: dict) -> dict:
    """The run config, checked by the same schema as the command line; raises ServiceError(section, message)."""
    from distill.config import TrainConfig
    from distill.errors import ConfigError
    for section, value in (("teacher", teacher), ("distill", distill), ("train", train)):
        if not isinstance(value, dict):
            raise ServiceError(section, f"must be a JSON object of option names to values, got {type(value).__name__}")
    teacher = teacher_spec(teacher)
    shards = teacher.get("shards", 1)
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 64:
        raise ServiceError("teacher", f"shards must be a whole number in 1..64, got {shards!r}")
    k = teacher.get("k", 20)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise ServiceError("teacher", f"k must be a whole number in 1..1000, got {k!r}")
    for section, options in (("distill", distill), ("train", train)):
        if "student" in options:
            raise ServiceError(section, "set the student at the top level of the run, not inside " + section)
        try:
            TrainConfig.from_options(options)
        except ConfigError as exc:
            raise ServiceError(section, str(exc)) from None
    try:
        TrainConfig.from_options({"student": student, **train, **distill})
    except ConfigError as exc:
        raise ServiceError("student", str(exc)) from None
    return {"student": student, "teacher": teacher, "distill": distill, "train": train}


# ----------------------------------------------------------------------------- runs

def ready_dataset(user, dataset: Dataset | int) -> Dataset:
    """The user's ready dataset `dataset` (a row or an id)."""
    pk = dataset.pk if isinstance(dataset, Dataset) else dataset
    row = Dataset.objects.filter(pk=pk, owner=user).first()
    if row is None:
        raise ServiceError("dataset", f"no dataset {pk} among yours")
    if row.status != Dataset.Status.READY:
        raise ServiceError("dataset", f"dataset {pk} is {row.status}, not ready")
    return row


def create_run(user, dataset: Dataset | int, name: str, *, student: str, teacher: dict, distill: dict,
               train: dict, tags: list[str]) -> Run:
    """A validated run row on one of the user's ready datasets, enqueued once committed."""
    dataset = ready_dataset(user, dataset)
    config = validate_config(student, teacher, distill, train)
    run = Run.objects.create(owner=user, dataset=dataset, name=name, tags=tags, config=config,
                             heartbeat=timezone.now())
    _launch(run)
    return run


def cancel_run(run: Run) -> Run:
    """Ask a queued or running run to stop (a queued one stops at once); ServiceError if finished."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in Run.FINISHED:
            raise ServiceError("detail", f"run {run.pk} is already {run.status}")
        run.cancel_requested = True
        if run.status == Run.Status.QUEUED and not run.started_at:
            run.status, run.finished_at, run.error = Run.Status.CANCELLED, timezone.now(), "cancelled while queued"
        run.save()
    return run


def retry_run(run: Run) -> Run:
    """Start a failed or cancelled run again from the stage it stopped in (finished stages are kept)."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status not in (Run.Status.FAILED, Run.Status.CANCELLED):
            raise ServiceError("detail", f"run {run.pk} is {run.status}; only failed or cancelled runs "
                                         "can be retried")
        run.status, run.error, run.cancel_requested, run.attempts = Run.Status.QUEUED, "", False, 0
        run.finished_at, run.heartbeat = None, timezone.now()
        run.save()
    _launch(run, run.stage or stages.FIRST)
    return run


def delete_run(run: Run) -> None:
    """Delete a finished run with its files; ServiceError while it is queued or running."""
    from webapp.studio.inference import students
    if run.status in (Run.Status.QUEUED, Run.Status.RUNNING):
        raise ServiceError("detail", f"run {run.pk} is {run.status}; cancel it first")
    directory = stages.run_dir(run)
    pk = run.pk
    run.delete()
    shutil.rmtree(directory, ignore_errors=True)
    students.pop(pk)


def recommend(run: Run, payload) -> tuple[list[str], list[float]]:
    """The top-k items the run's distilled student recommends after `payload["history"]`."""
    from webapp.studio.inference import students
    if run.status != Run.Status.SUCCEEDED:
        raise ServiceError("detail", f"run {run.pk} is {run.status}; recommendations need a succeeded run")
    if not hasattr(payload, "get"):
        raise ServiceError("detail", "send a JSON object {\"history\": [...], \"k\": 10}")
    history, k = payload.get("history"), payload.get("k", 10)
    if not isinstance(history, list) or not history or not all(isinstance(h, (str, int)) for h in history):
        raise ServiceError("history", "a non-empty list of item ids as in the uploaded data")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise ServiceError("k", "a whole number in 1..1000")
    return students.get(run).recommend([str(h) for h in history], k)


def _launch(run: Run, stage: str | None = None) -> None:
    """Enqueue the run's stage once the row is committed. If the broker is unreachable the run
    stays queued in the database, and a worker's recovery loop enqueues it when it can."""
    from webapp.studio import tasks

    def send() -> None:
        try:
            tasks.enqueue_stage(run.pk, stage or stages.FIRST)
        except Exception:
            log.warning("run %s: broker unreachable, left queued for recovery", run.pk, exc_info=True)

    transaction.on_commit(send)


# ----------------------------------------------------------------------------- queries

def filter_tag(runs, tag: str):
    """Runs carrying `tag` (a JSON list: containment on Postgres, a quoted match elsewhere)."""
    from django.db import connection
    if connection.vendor == "postgresql":
        return runs.filter(tags__contains=[tag])
    return runs.filter(tags__icontains=f'"{tag}"')
