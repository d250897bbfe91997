"""The service layer between HTTP and the models: upload and delete datasets, create, cancel, retry
and delete runs, recommend with a trained student. The REST API (`api.py`) and the dashboard
(`views.py`) both call these functions and map a `ServiceError` to a 400/404 or a form error, so
the two never disagree on what is valid (docs/architecture.md §1, §3)."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from distill.data.readers.movielens import MOVIELENS_FILES
from distill.data.readers.reference import REFERENCE_SPLITS, REFERENCE_STATS
from distill.errors import DistillError
from webapp.studio import stages
from webapp.studio.models import Dataset, Run

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A request the service refuses: `field` names what is wrong (an input field, or "detail" for
    the request as a whole), `message` says why and how to fix it; kind "invalid" (a 400),
    "not_found" (a 404) or "conflict" (a 409: the object is not in a state that allows it).
    `others` holds more fields with their messages when several are wrong at once."""

    def __init__(self, field: str, message: str, kind: str = "invalid", others: dict[str, str] | None = None):
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.kind, self.others = field, message, kind, dict(others or {})

    @property
    def errors(self) -> dict[str, str]:
        """{field: message} for every field this error is about."""
        return {self.field: self.message, **self.others}


# ----------------------------------------------------------------------------- datasets

# The upload's legacy one-file fields (they keep working beside `files`), and the file names the
# readers look for (the reference format's by role; MovieLens' ratings file -> its movies file).
LEGACY_ROLES = ("interactions", "items", "train", "val", "test", "statis")
REFERENCE_NAMES = {**REFERENCE_SPLITS, "statis": REFERENCE_STATS}
UPLOAD_FIELDS = ("name", "format", "files") + LEGACY_ROLES
# A stored file name: letters, digits and . _ - + ( ) and spaces; not starting with a dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+()\- ][A-Za-z0-9_.+()\- ]{0,199}")


def prepare_option_names() -> list[str]:
    from distill.data.prepare import prepare_fields
    return [field["name"] for field in prepare_fields()]


def known_upload_fields() -> list[str]:
    return list(UPLOAD_FIELDS) + prepare_option_names()


def check_upload_fields(names) -> None:
    """An upload names only fields it knows: a misspelt option would otherwise be ignored."""
    known = known_upload_fields()
    unknown = sorted(set(names) - set(known) - {"csrfmiddlewaretoken"})
    if unknown:
        raise ServiceError("detail", f"unknown field(s) {', '.join(map(repr, unknown))}; the known fields are "
                                     f"{', '.join(known)}")


def parse_prepare_options(values: dict) -> dict:
    """The prepare options of an upload ({option: text}, empty text = default), checked by the
    library's schema (`distill.data.prepare.prepare_fields`); returns the given ones, as text.
    Raises ServiceError on the option's field."""
    from distill.data.prepare import PrepareOptions
    from distill.errors import OptionError
    given = {name: str(value) for name, value in values.items() if value not in (None, "")}
    try:
        PrepareOptions.from_form(given)
    except OptionError as exc:
        field = exc.field if exc.field in given else "detail"
        raise ServiceError(field, str(exc)) from None
    return given


def create_dataset(user, name: str, fmt: str | None, files: list, roles: dict | None = None,
                   options: dict | None = None, *, enqueue: bool = True, limit: bool = True) -> Dataset:
    """Store an upload and queue its preparation: returns the dataset, `processing`.

    `files`: uploaded files recognised by their own names (like `prepare --input DIR`); `roles`:
    the legacy one-file fields {interactions|items|train|val|test|statis: file}; `options`: the
    prepare options as text. The request only checks what it can see at once (fields, names,
    sizes, which files a format needs) and moves the files into the dataset's folder; reading
    them is the worker's (`prepare_stored`; `enqueue=False` leaves that to the caller). A refused
    upload keeps nothing on disk. `limit=False` (an operator's own files) skips UPLOAD_MAX_MB."""
    roles = {role: upload for role, upload in (roles or {}).items() if upload is not None}
    options = parse_prepare_options(options or {})
    if fmt not in (None, "") and fmt not in Dataset.FORMATS:
        raise ServiceError("format", f"unknown format {fmt!r}; known: {', '.join(Dataset.FORMATS)}, or leave it "
                                     "out to recognise the files by their names")
    fmt = fmt or None
    if not files and not roles:
        raise ServiceError("files", "no file uploaded; send the dataset's files in the repeated field `files`")
    stored = _stored_names(files, roles, fmt, limit)
    if Dataset.objects.filter(owner=user, name=name).exists():
        raise ServiceError("name", f"you already have a dataset named {name!r}; choose another name or delete that one")
    root = Path(settings.STORAGE_ROOT) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
    try:
        upload_dir = work / "upload"
        upload_dir.mkdir()
        listing = []
        for stored_name, upload, role in stored:
            _save(upload, upload_dir / stored_name)
            listing.append({"name": stored_name, "size": upload.size, "role": role})
        fmt = fmt or _recognise(upload_dir)
        with transaction.atomic():
            try:
                dataset = Dataset.objects.create(owner=user, name=name, format=fmt, files=listing, options=options,
                                                 status=Dataset.Status.PROCESSING, message="queued for preparation",
                                                 heartbeat=timezone.now())
            except IntegrityError:
                raise ServiceError("name", f"you already have a dataset named {name!r}") from None
            final = root / str(dataset.pk)
            work.rename(final)
            dataset.upload_dir, dataset.prepared_dir = str(final / "upload"), str(final / "prepared")
            dataset.save(update_fields=["upload_dir", "prepared_dir"])
            if enqueue:
                transaction.on_commit(lambda: _send_prepare(dataset.pk))
        return dataset
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def _stored_names(files: list, roles: dict, fmt: str | None, limit: bool) -> list[tuple[str, object, str | None]]:
    """(stored name, file, legacy role) of every file; the checks that need no reading."""
    out = []
    for role, upload in roles.items():
        if fmt == "reference" and role in REFERENCE_NAMES:
            out.append((REFERENCE_NAMES[role], upload, role))
        else:
            out.append((Path(upload.name).name, upload, role))
    out += [(Path(upload.name).name, upload, None) for upload in files]
    total = 0
    for stored, upload, role in out:
        field = role or "files"
        if not SAFE_NAME.fullmatch(stored):
            raise ServiceError(field, f"{upload.name!r}: a file name may hold letters, digits, spaces and . _ - + ( ), "
                                      "not start with a dot, and be at most 200 characters; rename the file")
        if upload.size == 0:
            raise ServiceError(field, f"{upload.name}: the file is empty")
        total += upload.size
    if limit and total > settings.UPLOAD_MAX_MB * 1024 * 1024:
        raise ServiceError("files", f"the files add up to {total / 1024 / 1024:.1f} MB, over the upload limit of "
                                    f"{settings.UPLOAD_MAX_MB} MB (UPLOAD_MAX_MB)")
    names = [stored for stored, _, _ in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ServiceError("files", f"two files are named {twice[0]!r}; every file of a dataset needs its own name")
    if roles:
        _check_roles(roles, fmt)
    return out


def _check_roles(roles: dict, fmt: str | None) -> None:
    """The legacy one-file fields: which a format needs and takes."""
    needs = {"csv": ("interactions", "items"), "recbole": ("interactions",), "movielens": ("interactions",),
             "reference": ("train", "val", "test", "statis")}
    takes = {"csv": {"interactions", "items"}, "recbole": {"interactions", "items"},
             "movielens": {"interactions", "items"}, "reference": {"train", "val", "test", "statis", "items"}}
    if fmt is None:
        fmt = "reference" if set(roles) & set(REFERENCE_NAMES) else "csv"
    missing = [role for role in needs[fmt] if role not in roles]
    if missing:
        message = f"the {fmt} format needs this file (or send all files in the field `files`)"
        raise ServiceError(missing[0], message, others={role: message for role in missing[1:]})
    unexpected = [role for role in roles if role not in takes[fmt]]
    if unexpected:
        message = f"the {fmt} format takes no {{}} file; send the files in the field `files`, named as you have them"
        raise ServiceError(unexpected[0], message.format(unexpected[0]),
                           others={role: message.format(role) for role in unexpected[1:]})
    if fmt == "movielens":
        name = Path(roles["interactions"].name).name
        if name not in MOVIELENS_FILES:
            raise ServiceError("interactions", f"{name}: a MovieLens ratings file is named "
                                               f"{', '.join(MOVIELENS_FILES)}; rename it or use format csv")
        expected = MOVIELENS_FILES[name]
        if "items" in roles and Path(roles["items"].name).name != expected:
            raise ServiceError("items", f"{Path(roles['items'].name).name}: with {name} the movies file is {expected}")


def _save(upload, target: Path) -> None:
    """Move a streamed upload into place (a rename in the same storage); copy anything else."""
    path = getattr(upload, "path", None)
    if path is not None and Path(path).exists():
        upload.file.close()
        Path(path).rename(target)
        return
    with open(target, "wb") as fh:
        for chunk in upload.chunks():
            fh.write(chunk)


def _recognise(folder: Path) -> str:
    from distill.data.readers import detect_format
    from distill.errors import DistillError, option_style
    try:
        with option_style("form"):
            return detect_format(folder)
    except DistillError as exc:
        raise ServiceError("files", _unpath(str(exc), folder)) from None


def _unpath(message: str, *folders: Path) -> str:
    """A library message without the server's folders in it (the user knows only their file names)."""
    for folder in folders:
        message = message.replace(f"{folder}/", "").replace(str(folder), "the upload")
    return message


def _send_prepare(dataset_id: int) -> None:
    from webapp.studio import tasks
    try:
        tasks.enqueue_prepare(dataset_id)
    except Exception:
        log.warning("dataset %s: broker unreachable, left processing for recovery", dataset_id, exc_info=True)


def prepare_stored(dataset_id: int, task_id: str = "", style: str = "form") -> Dataset | None:
    """Prepare an uploaded dataset (the worker's task, or `import_dataset`): claim it, read its
    files, write the prepared directory, and set it `ready` with its stats or `failed` with the
    reader's message (its files are then deleted). Runs waiting for it start, or fail with it.
    Returns the dataset, or None when there is nothing to do (gone, finished, or held by a live
    task elsewhere). `style`: how messages name an option ("form": form field user_col, over REST
    and the dashboard; "cli": --user-col, for `import_dataset`)."""
    from distill.data import PrepareOptions, prepare_dataset
    from distill.errors import option_style
    dataset = _claim(dataset_id, task_id)
    if dataset is None:
        return None
    upload_dir = Path(dataset.upload_dir)
    prepared = Path(dataset.prepared_dir)
    beat = {"last": 0.0}

    def progress(message: str, fraction: float) -> None:
        now = time.monotonic()
        if now - beat["last"] < 0.5 and fraction < 1:
            return
        beat["last"] = now
        Dataset.objects.filter(pk=dataset_id, status=Dataset.Status.PROCESSING).update(
            message=message[:300], progress=fraction, heartbeat=timezone.now())

    try:
        with option_style(style):
            options = PrepareOptions.from_form(dataset.options)
            source, items = _sources(dataset, upload_dir)
            result = prepare_dataset(dataset.format, source, prepared, items=items, options=options, progress=progress)
    except DistillError as exc:
        return _prepared(dataset_id, error=_unpath(str(exc), upload_dir, prepared))
    except Exception as exc:  # a bug or an environment problem: keep the reason, log the traceback
        log.exception("dataset %s: preparation failed", dataset_id)
        return _prepared(dataset_id, error=f"preparation failed: {type(exc).__name__}: {exc}")
    return _prepared(dataset_id, stats=result.stats, content_hash=result.content_hash)


def _sources(dataset: Dataset, upload_dir: Path) -> tuple[Path, Path | None]:
    """What the reader is given: the upload folder, or the legacy fields' files by their roles."""
    roles = {entry["role"]: upload_dir / entry["name"] for entry in dataset.files if entry.get("role")}
    if not roles:
        return upload_dir, None
    if dataset.format == "reference":
        return upload_dir, roles.get("items")
    return roles["interactions"], roles.get("items")


def _claim(dataset_id: int, task_id: str) -> Dataset | None:
    from datetime import timedelta
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
        if dataset is None or dataset.status != Dataset.Status.PROCESSING:
            return None
        fresh = timezone.now() - timedelta(seconds=settings.RUN_STALE_SECONDS)
        if dataset.task_id and dataset.task_id != task_id and dataset.heartbeat and dataset.heartbeat > fresh:
            return None   # another task is alive on it
        dataset.attempts += 1
        if dataset.attempts > settings.RUN_MAX_ATTEMPTS:
            error = (f"preparation was started {dataset.attempts - 1} times and never finished (the worker died "
                     f"or was killed each time, e.g. out of memory); giving up after RUN_MAX_ATTEMPTS="
                     f"{settings.RUN_MAX_ATTEMPTS}")
        else:
            error = None
            dataset.task_id, dataset.heartbeat = task_id or "inline", timezone.now()
            dataset.message, dataset.progress = f"preparing (attempt {dataset.attempts})", 0.0
            dataset.save(update_fields=["attempts", "task_id", "heartbeat", "message", "progress"])
    if error:
        _prepared(dataset_id, error=error)
        return None
    # A half-written prepared folder of an earlier attempt cannot exist (atomic_directory); an
    # earlier attempt's complete one is replaced.
    shutil.rmtree(dataset.prepared_dir, ignore_errors=True)
    return dataset


def _prepared(dataset_id: int, *, stats: dict | None = None, content_hash: str = "",
              error: str | None = None) -> Dataset | None:
    """Finish a preparation: ready or failed; then start (or fail) the runs that waited for it."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().filter(pk=dataset_id).first()
        if dataset is None or dataset.status != Dataset.Status.PROCESSING:
            return dataset
        dataset.finished_at, dataset.heartbeat, dataset.task_id = timezone.now(), timezone.now(), ""
        if error is None:
            dataset.status, dataset.stats, dataset.content_hash = Dataset.Status.READY, stats, content_hash
            dataset.progress, dataset.message, dataset.error = 1.0, "ready", ""
        else:
            dataset.status, dataset.error, dataset.message = Dataset.Status.FAILED, error, "failed"
        dataset.save()
        # A study's children that wait for a sibling's teacher are started by that sibling.
        waiting = list(Run.objects.select_for_update().filter(dataset=dataset, status=Run.Status.QUEUED,
                                                              started_at__isnull=True, waiting_for__isnull=True))
        for run in waiting:
            if error is None:
                _launch(run)   # enqueue_stage freshens its heartbeat
            else:
                run.status, run.finished_at = Run.Status.FAILED, timezone.now()
                run.error = f"dataset {dataset.pk} ({dataset.name}) failed to prepare: {error}"
                run.save(update_fields=["status", "finished_at", "error"])
        if error is not None:   # and the study children that waited behind them
            Run.objects.filter(dataset=dataset, status=Run.Status.QUEUED, waiting_for__isnull=False).update(
                status=Run.Status.FAILED, finished_at=timezone.now(), waiting_for=None,
                error=f"dataset {dataset.pk} ({dataset.name}) failed to prepare: {error}")
    if error is not None and dataset.upload_dir:
        # The files cannot be used: keep the row (and its error), not the files.
        shutil.rmtree(Path(dataset.upload_dir).parent, ignore_errors=True)
    return dataset


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


def validate_config(student: str, teacher: dict, distill: dict, train: dict, seeds: int = 1,
                    seed_list: list | None = None) -> dict:
    """The run config, checked by the same schema as the command line; raises ServiceError(section, message).
    `seeds` students per role (seeds train.seed .. train.seed + seeds - 1, 0.. by default) unless
    `seed_list` names them; the config keeps the list under "seeds"."""
    from distill.config import TrainConfig, check_candidate_k
    from distill.errors import ConfigError
    for section, value in (("teacher", teacher), ("distill", distill), ("train", train)):
        if not isinstance(value, dict):
            raise ServiceError(section, f"must be a JSON object of option names to values, got {type(value).__name__}")
    teacher = teacher_spec(teacher)
    from webapp.studio.model_store import MODEL_OPTIONS, name_of
    for option in MODEL_OPTIONS:
        if teacher.get(option) is not None:
            try:
                teacher[option] = name_of(option, teacher[option])
            except ValueError as exc:
                raise ServiceError("teacher", str(exc)) from None
    for option in ("url", "embed_url"):
        if isinstance(teacher.get(option), str) and not allowed_server(teacher[option]):
            raise ServiceError("teacher", f"{option} {teacher[option]!r} is not a teacher server this studio may call "
                                          "(TEACHER_SERVER_URLS); ask the operator to allow it")
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
        combined = TrainConfig.from_options({"student": student, **train, **distill})
    except ConfigError as exc:
        raise ServiceError("student", str(exc)) from None
    try:   # the distilled student reads candidate_k of the teacher's k candidates: refuse it now, not at that stage
        check_candidate_k(combined, k)
    except ConfigError as exc:
        raise ServiceError("distill", str(exc)) from None
    return {"student": student, "teacher": teacher, "distill": distill, "train": train,
            "seeds": _seed_list(seeds, seed_list, combined.seed)}


def allowed_server(url: str) -> bool:
    """Whether the operator lets teachers call `url` (the openai backend): it must begin with one of
    TEACHER_SERVER_URLS, compared on whole path segments (none allowed by default: a worker never
    sends requests where a user points it)."""
    url = url.rstrip("/") + "/"
    return any(url.startswith(prefix.rstrip("/") + "/") for prefix in settings.TEACHER_SERVER_URLS)


def _seed_list(seeds, seed_list, first: int) -> list[int]:
    from distill.errors import ConfigError
    from distill.recipe import MAX_SEEDS, check_seeds
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS:
        raise ServiceError("seeds", f"a whole number in 1..{MAX_SEEDS}, got {seeds!r}")
    if seed_list is not None:
        if not isinstance(seed_list, list):
            raise ServiceError("seed_list", "a list of distinct whole numbers, e.g. [0, 1, 2]")
        if seeds not in (1, len(seed_list)):
            raise ServiceError("seed_list", f"names {len(seed_list)} seeds but seeds is {seeds}: drop seeds or "
                                            "make them agree")
        if any(isinstance(s, int) and not isinstance(s, bool) and s > 2**31 - 1 for s in seed_list):
            raise ServiceError("seed_list", f"each seed at most {2**31 - 1}")
        try:
            return check_seeds(seed_list)
        except ConfigError as exc:
            raise ServiceError("seed_list", str(exc)) from None
    return list(range(first, first + seeds))


# ----------------------------------------------------------------------------- runs

def usable_dataset(user, dataset: Dataset | int, lock: bool = False) -> Dataset:
    """The user's dataset `dataset` (a row or an id) that a run may use: ready, or still
    processing (the run then waits for it); a failed one is refused with its error."""
    pk = dataset.pk if isinstance(dataset, Dataset) else dataset
    rows = Dataset.objects.select_for_update() if lock else Dataset.objects
    row = rows.filter(pk=pk, owner=user).first()
    if row is None:
        raise ServiceError("dataset", f"no dataset {pk} among yours")
    if row.status == Dataset.Status.FAILED:
        raise ServiceError("dataset", f"dataset {pk} failed to prepare ({row.error[:300]}); fix the files and "
                                      "upload them again")
    return row


def check_budget_fits(teacher: dict, dataset: Dataset) -> None:
    """A teacher budget given as a count must not exceed the dataset's training instances (known once
    it is prepared; a dataset still processing is checked by the teacher stage)."""
    from distill.teacher.budget import budget_count
    from distill.errors import ConfigError
    budget = teacher.get("budget")
    instances = ((dataset.stats or {}).get("instances") or {}).get("train")
    if budget is None or not isinstance(instances, int):
        return
    try:
        budget_count(budget, instances)
    except ConfigError as exc:
        raise ServiceError("teacher", str(exc)) from None


def create_run(user, dataset: Dataset | int, name: str, *, student: str, teacher: dict, distill: dict,
               train: dict, tags: list[str], seeds: int = 1, seed_list: list | None = None) -> Run:
    """A validated run row on one of the user's datasets, enqueued once committed; on a dataset
    still processing it waits, and its preparation starts it (or fails it)."""
    config = validate_config(student, teacher, distill, train, seeds, seed_list)
    with transaction.atomic():
        # Locked: the preparation's end (which starts the waiting runs) sees this run or has
        # already set the dataset ready.
        dataset = usable_dataset(user, dataset, lock=True)
        check_budget_fits(config["teacher"], dataset)
        run = Run.objects.create(owner=user, dataset=dataset, name=name, tags=tags, config=config,
                                 heartbeat=timezone.now(),
                                 stage_message="" if dataset.status == Dataset.Status.READY
                                 else f"waiting for dataset {dataset.pk} to be prepared")
        if dataset.status == Dataset.Status.READY:
            _launch(run)
    return run


def cancel_run(run: Run) -> Run:
    """Ask a queued or running run to stop (a queued one, before a stage or between two, stops at
    once; a running one at its next batch); ServiceError if finished."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in Run.FINISHED:
            raise ServiceError("detail", f"run {run.pk} is already {run.status}")
        run.cancel_requested = True
        if run.status == Run.Status.QUEUED:   # no task runs it (before its first stage or between two)
            run.status, run.finished_at, run.error = Run.Status.CANCELLED, timezone.now(), "cancelled while queued"
        run.save()
        if run.study_id and run.status == Run.Status.CANCELLED:
            from webapp.studio.studies import release_followers
            release_followers(run)   # its study's children that waited for its teacher
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


SERVED_ROLES = ("distilled", "baseline")
MAX_HISTORIES = 1000             # histories in one batched /recommend
MAX_HISTORY_ITEMS = 10_000       # items in one history (only the last max_len are used)
MAX_BATCH_ITEMS = 200_000        # items over all the histories of one request


def require_succeeded(run: Run, what: str) -> None:
    """A 409 naming the run's status unless it succeeded."""
    if run.status != Run.Status.SUCCEEDED:
        raise ServiceError("detail", f"run {run.pk} is {run.status}; {what} need a succeeded run", kind="conflict",
                           others={"status": run.status})


def _served_role(value) -> str:
    if value is None:
        return "distilled"
    if not isinstance(value, str) or value.lower() not in SERVED_ROLES:
        raise ServiceError("role", f"one of {', '.join(SERVED_ROLES)} (default distilled)")
    return value.lower()


def _history(value, field: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(h, (str, int)) and not isinstance(h, bool)
                                                           for h in value):
        raise ServiceError(field, "a non-empty list of item ids as in the uploaded data")
    if len(value) > MAX_HISTORY_ITEMS:
        raise ServiceError(field, f"at most {MAX_HISTORY_ITEMS:,} items (only the last max_len are used)")
    return [str(h) for h in value]


def recommend(run: Run, payload) -> dict:
    """What the run's student (`role`: distilled by default, or baseline) recommends after item ids
    as in the uploaded files: `{"history": [...], "k": 10}` answers `{"items": [{id, title, score}]}`,
    `{"histories": [[...], ...], "k": 10}` answers `{"results": [{"items": [...]}, ...]}` in one
    forward pass. A history longer than the student's window keeps its last items; its items are
    never recommended."""
    from webapp.studio.inference import students
    require_succeeded(run, "recommendations")
    if not hasattr(payload, "get"):
        raise ServiceError("detail", "send a JSON object {\"history\": [...], \"k\": 10} or "
                                     "{\"histories\": [[...], ...], \"k\": 10}")
    k, role = payload.get("k", 10), _served_role(payload.get("role"))
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise ServiceError("k", "a whole number in 1..1000")
    batched = "histories" in payload
    if batched == ("history" in payload):
        raise ServiceError("detail", "give either history (one list of item ids) or histories (a list of them)")
    if batched:
        given = payload["histories"]
        if not isinstance(given, list) or not given:
            raise ServiceError("histories", "a non-empty list of histories, each a list of item ids")
        if len(given) > MAX_HISTORIES:
            raise ServiceError("histories", f"at most {MAX_HISTORIES:,} histories per request")
        histories = [_history(h, f"histories[{n}]") for n, h in enumerate(given)]
        if sum(map(len, histories)) > MAX_BATCH_ITEMS:
            raise ServiceError("histories", f"at most {MAX_BATCH_ITEMS:,} items in all per request")
    else:
        histories = [_history(payload["history"], "history")]
    student = students.get(run, role)
    try:
        answers = student.recommend_many(histories, k)
    except DistillError as exc:
        raise ServiceError("histories" if batched else "history", str(exc)) from None
    results = [{"items": [{"id": item, "title": student.titles[student.index[item]], "score": score}
                          for item, score in zip(ids, scores)]} for ids, scores in answers]
    return {"results": results} if batched else results[0]


def export_run(run: Run, params) -> Path:
    """The run's student (`role`, distilled by default) exported as `format` (onnx | torchscript)
    with its top-`k` (default 20, 1..1000): a zip of `distill.export`'s directory (model, items.json,
    model card, serve.py), built on the first request, checked on the run's test histories, and kept
    under the run's folder (`exports/`) for the next ones. Returns the zip's path."""
    import fcntl
    import zipfile

    from distill.export import DEFAULT_K, EXPORT_FORMATS
    from distill.export import export_run as export_directory
    require_succeeded(run, "exports")
    fmt, role = params.get("format"), _served_role(params.get("role"))
    if fmt not in EXPORT_FORMATS:
        raise ServiceError("format", f"one of {', '.join(EXPORT_FORMATS)}")
    from webapp.studio.serializers import parse_id
    k = params.get("k", DEFAULT_K)
    k = parse_id(k) if isinstance(k, str) else k      # ASCII digits only, as every id in a query string
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
        raise ServiceError("k", "a whole number in 1..1000")
    folder = stages.run_dir(run) / "exports"
    target = folder / f"{role}-{fmt}-k{k}.zip"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)      # one export at a time per run; the second finds the zip
        if target.is_file():
            return target
        analysis = run.analysis or {}
        uncertainty = (analysis.get("uncertainty") or {}).get(role) if len(stages.seeds_of(run)) > 1 else None
        work = Path(tempfile.mkdtemp(prefix=f".{role}-{fmt}-", dir=folder))
        try:
            try:
                export_directory(stages.student_dir(run, role), run.dataset.prepared_dir, fmt, work / "export", k=k,
                                 uncertainty=uncertainty, name=run.dataset.name, requests=50)
            except DistillError as exc:
                message = str(exc).replace(str(stages.run_dir(run)), f"run {run.pk}")
                raise ServiceError("detail", message.replace(str(settings.STORAGE_ROOT), "<storage>")) from None
            partial = work / "export.zip"
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted((work / "export").iterdir()):
                    archive.write(file, f"run-{run.pk}-{role}-{fmt}/{file.name}")
            partial.replace(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


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
