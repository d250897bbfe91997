"""The REST API: what CI jobs script against. Token or session auth on every endpoint, every
queryset scoped to its owner (another user's object is a 404), bad input a 400 naming the field."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import IntegrityError, connection, transaction
from django.http import JsonResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action, api_view, permission_classes, throttle_classes
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler

from webapp.studio.models import Dataset, EpochMetric, Latency, Metric, Run
from webapp.studio.pipeline import validate_config

ROLES = ("teacher", "baseline", "distilled", "most_popular")


def exception_handler(exc, context):
    """DRF's handler; a DistillError escaping a view becomes a 400 with its message, not a 500."""
    from distill.errors import DistillError
    if isinstance(exc, DistillError):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


class UploadThrottle(ScopedRateThrottle):
    scope_attr = "throttle_scope"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


# ----------------------------------------------------------------------------- auth

@extend_schema(request=inline_serializer("TokenRequest", {"username": serializers.CharField(),
                                                           "password": serializers.CharField()}),
               responses=inline_serializer("TokenResponse", {"token": serializers.CharField()}))
@api_view(["POST"])
@permission_classes([AllowAny])
@throttle_classes([UploadThrottle])
def obtain_token(request):
    """Exchange a username and password for the API token of that user."""
    if not hasattr(request.data, "get"):
        raise ValidationError({"detail": "send a JSON object {\"username\": ..., \"password\": ...}"})
    username, password = request.data.get("username"), request.data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ValidationError({"detail": "send {\"username\": ..., \"password\": ...}"})
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ValidationError({"detail": "wrong username or password"})
    token, _ = Token.objects.get_or_create(user=user)
    return Response({"token": token.key})


obtain_token.cls.throttle_scope = "token"


@extend_schema(exclude=True)
def healthz(request):
    """Database and broker reachable: 200, else 503 with what failed (no auth: for probes)."""
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        problems["database"] = type(exc).__name__
    try:
        from worker import app
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        problems["broker"] = type(exc).__name__
    if problems:
        return JsonResponse({"status": "unavailable", **problems}, status=503)
    return JsonResponse({"status": "ok"})


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


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "format", "status", "stats", "error", "content_hash", "files", "created_at"]
        read_only_fields = fields


class DatasetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    format = serializers.ChoiceField(choices=Dataset.FORMATS)
    interactions = serializers.FileField(required=False, help_text="interactions / ratings file")
    items = serializers.FileField(required=False, help_text="item titles file")
    train = serializers.FileField(required=False, help_text="reference format: train_data.csv")
    val = serializers.FileField(required=False, help_text="reference format: val_data.csv")
    test = serializers.FileField(required=False, help_text="reference format: test_data.csv")
    statis = serializers.FileField(required=False, help_text="reference format: data_statis.csv")

    def validate(self, data):
        fmt = data["format"]
        missing = [role for role in REQUIRED[fmt] if role not in data]
        if missing:
            raise ValidationError({role: f"the {fmt} format needs this file" for role in missing})
        allowed = set(FILE_ROLES[fmt])
        unexpected = [role for role in ("interactions", "items", "train", "val", "test", "statis")
                      if role in data and role not in allowed]
        if unexpected:
            raise ValidationError({role: f"the {fmt} format takes no {role} file" for role in unexpected})
        limit = settings.UPLOAD_MAX_MB * 1024 * 1024
        for role in allowed:
            upload = data.get(role)
            if upload is None:
                continue
            if upload.size > limit:
                raise ValidationError({role: f"{upload.name}: {upload.size / 1024 / 1024:.1f} MB is over the upload "
                                             f"limit of {settings.UPLOAD_MAX_MB} MB (UPLOAD_MAX_MB)"})
            if upload.size == 0:
                raise ValidationError({role: f"{upload.name}: the file is empty"})
        if fmt == "movielens":
            name = Path(data["interactions"].name).name
            if name not in MOVIELENS_NAMES:
                raise ValidationError({"interactions": f"{name}: a MovieLens ratings file is named "
                                                       f"{', '.join(MOVIELENS_NAMES)}; rename it or use format csv"})
            expected = MOVIELENS_NAMES[name]
            if Path(data["items"].name).name != expected:
                raise ValidationError({"items": f"{Path(data['items'].name).name}: with {name} the movies file is "
                                                f"{expected}"})
        return data


class DatasetViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                     mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Upload an interaction dataset with titles; it is validated and prepared on upload."""
    serializer_class = DatasetSerializer
    queryset = Dataset.objects.none()  # for the schema; requests use get_queryset (owner-scoped)
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_classes = [UploadThrottle]
    throttle_scope = "uploads"

    def get_queryset(self):
        return Dataset.objects.filter(owner=self.request.user)

    def get_serializer_class(self):
        return DatasetUploadSerializer if self.action == "create" else DatasetSerializer

    @extend_schema(request=DatasetUploadSerializer, responses={201: DatasetSerializer})
    def create(self, request, *args, **kwargs):
        dataset = create_dataset(request.user, request.data)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        dataset = self.get_object()
        if dataset.runs.exists():
            raise ValidationError({"detail": f"dataset {dataset.pk} is used by {dataset.runs.count()} run(s); delete "
                                             "those runs first"})
        root = Path(dataset.upload_dir).parent if dataset.upload_dir else None
        dataset.delete()
        if root is not None and root.is_dir():
            shutil.rmtree(root, ignore_errors=True)
        return Response(status=status.HTTP_204_NO_CONTENT)


def create_dataset(user, payload) -> Dataset:
    """Validate an upload (the API's and the dashboard's), then store and prepare it; ValidationError
    names the field, a reader's DataError names the file and line."""
    upload = DatasetUploadSerializer(data=payload)
    upload.is_valid(raise_exception=True)
    data = upload.validated_data
    if Dataset.objects.filter(owner=user, name=data["name"]).exists():
        raise ValidationError({"name": f"you already have a dataset named {data['name']!r}; choose another name "
                                       "or delete that one"})
    return _store_and_prepare(user, data)


def _store_and_prepare(user, data) -> Dataset:
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
        prepared = prepare_dataset(fmt, source, work / "prepared", items=items, options=PrepareOptions())
        with transaction.atomic():
            try:
                dataset = Dataset.objects.create(owner=user, name=data["name"], format=fmt, files=files,
                                                 status=Dataset.Status.READY, stats=prepared.stats,
                                                 content_hash=prepared.content_hash)
            except IntegrityError:
                raise ValidationError({"name": f"you already have a dataset named {data['name']!r}"}) from None
            final = root / str(dataset.pk)
            work.rename(final)
            dataset.upload_dir, dataset.prepared_dir = str(final / "upload"), str(final / "prepared")
            dataset.save(update_fields=["upload_dir", "prepared_dir"])
        return dataset
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- runs

class RunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    student = serializers.ChoiceField(choices=["gru4rec", "sasrec", "dros", "caser"], default="sasrec")
    teacher = serializers.JSONField(default=dict, help_text="{backend: semantic|titles|hf|vllm, k, ...}")
    distill = serializers.JSONField(default=dict, help_text="distillation options, e.g. {lam: auto}")
    train = serializers.JSONField(default=dict, help_text="training options, e.g. {epochs: 3, seed: 1}")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list, max_length=20)

    def validate_dataset(self, value):
        dataset = Dataset.objects.filter(pk=value, owner=self.context["request"].user).first()
        if dataset is None:
            raise ValidationError(f"no dataset {value} among yours")
        if dataset.status != Dataset.Status.READY:
            raise ValidationError(f"dataset {value} is {dataset.status}, not ready")
        return dataset

    def validate(self, data):
        try:
            data["config"] = validate_config(data["student"], data["teacher"], data["distill"], data["train"])
        except ValueError as exc:
            field, message = exc.args if len(exc.args) == 2 else ("config", str(exc))
            raise ValidationError({field: message}) from None
        return data


def filter_tag(runs, tag: str):
    """Runs carrying `tag` (a JSON list: containment on Postgres, a quoted match elsewhere)."""
    if connection.vendor == "postgresql":
        return runs.filter(tags__contains=[tag])
    return runs.filter(tags__icontains=f'"{tag}"')


def metrics_of(run: Run) -> dict:
    out: dict = {}
    for m in run.metrics.all():
        out.setdefault(m.role, {}).setdefault(m.split, {})[f"{m.metric}@{m.k}"] = m.value
    return out


def latency_of(run: Run) -> dict:
    return {row.role: {"p50_ms": row.p50_ms, "p95_ms": row.p95_ms, "throughput": row.throughput,
                       "device": row.device, "batch_size": row.batch_size} for row in run.latency.all()}


class RunListSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ["id", "name", "dataset", "status", "stage", "progress", "tags", "created_at", "finished_at"]


class RunSerializer(serializers.ModelSerializer):
    metrics = serializers.SerializerMethodField()
    latency = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "name", "dataset", "tags", "config", "status", "stage", "stage_message", "progress",
                  "attempts", "error", "metrics", "latency", "created_at", "started_at", "finished_at"]

    def get_metrics(self, run) -> dict:
        return metrics_of(run)

    def get_latency(self, run) -> dict:
        return latency_of(run)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                 viewsets.GenericViewSet):
    """Launch, watch, cancel, retry and compare runs; query the distilled student."""
    serializer_class = RunSerializer
    queryset = Run.objects.none()  # for the schema; requests use get_queryset (owner-scoped)
    throttle_classes = [UploadThrottle]
    throttle_scope = "runs"

    def get_queryset(self):
        runs = Run.objects.filter(owner=self.request.user)
        if self.action == "list":
            params = self.request.query_params
            if params.get("status"):
                runs = runs.filter(status=params["status"])
            if params.get("dataset"):
                if not params["dataset"].isdigit():
                    raise ValidationError({"dataset": "must be a dataset id"})
                runs = runs.filter(dataset_id=int(params["dataset"]))
            if params.get("student"):
                runs = runs.filter(config__student=params["student"])
            if params.get("tag"):
                runs = filter_tag(runs, params["tag"])
        return runs if self.action == "list" else runs.prefetch_related("metrics", "latency")

    def get_serializer_class(self):
        return RunListSerializer if self.action == "list" else RunSerializer

    @extend_schema(parameters=[OpenApiParameter("status", str), OpenApiParameter("dataset", int),
                               OpenApiParameter("student", str), OpenApiParameter("tag", str)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def create(self, request):
        serializer = RunCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = create_run(request.user, data["dataset"], data["name"], data["config"], data["tags"])
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        delete_run(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(RunSerializer(cancel_run(self.get_object())).data)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return Response(RunSerializer(retry_run(self.get_object())).data)

    @extend_schema(parameters=[OpenApiParameter("ids", str, description="comma-separated run ids")],
                   responses=inline_serializer("Comparison", {"runs": serializers.ListField()}))
    @action(detail=False, methods=["get"])
    def compare(self, request):
        raw = request.query_params.get("ids", "")
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise ValidationError({"ids": "comma-separated run ids, e.g. ?ids=1,2,3"}) from None
        if not 1 <= len(ids) <= 50:
            raise ValidationError({"ids": "give 1 to 50 run ids, e.g. ?ids=1,2,3"})
        runs = {run.pk: run for run in self.get_queryset().filter(pk__in=ids)}
        missing = [i for i in ids if i not in runs]
        if missing:
            from rest_framework.exceptions import NotFound
            raise NotFound(f"no run(s) {missing} among yours")
        return Response({"runs": [{"id": i, "name": runs[i].name, "status": runs[i].status,
                                   "config": runs[i].config, "metrics": metrics_of(runs[i]),
                                   "latency": latency_of(runs[i])} for i in ids]})

    @extend_schema(responses=inline_serializer("Curves", {"curves": serializers.ListField()}))
    @action(detail=True, methods=["get"])
    def curves(self, request, pk=None):
        run = self.get_object()
        rows = EpochMetric.objects.filter(run=run)
        return Response({"curves": [{"role": r.role, "lam": r.lam, "epoch": r.epoch, "loss": r.loss,
                                     "seconds": r.seconds, "val": r.val} for r in rows]})

    @extend_schema(request=inline_serializer("RecommendRequest", {
        "history": serializers.ListField(child=serializers.CharField()), "k": serializers.IntegerField(default=10)}),
        responses=inline_serializer("RecommendResponse", {"items": serializers.ListField(),
                                                          "scores": serializers.ListField()}))
    @action(detail=True, methods=["post"])
    def recommend(self, request, pk=None):
        run = self.get_object()
        if run.status != Run.Status.SUCCEEDED:
            raise ValidationError({"detail": f"run {run.pk} is {run.status}; recommendations need a succeeded run"})
        if not hasattr(request.data, "get"):
            raise ValidationError({"detail": "send a JSON object {\"history\": [...], \"k\": 10}"})
        history, k = request.data.get("history"), request.data.get("k", 10)
        if not isinstance(history, list) or not history or not all(isinstance(h, (str, int)) for h in history):
            raise ValidationError({"history": "a non-empty list of item ids as in the uploaded data"})
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 1000:
            raise ValidationError({"k": "a whole number in 1..1000"})
        items, scores = _students.get(run).recommend([str(h) for h in history], k)
        return Response({"items": items, "scores": scores})


def cancel_run(run: Run) -> Run:
    """Ask a queued or running run to stop (a queued one stops at once); ValidationError if finished."""
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status in Run.FINISHED:
            raise ValidationError({"detail": f"run {run.pk} is already {run.status}"})
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
            raise ValidationError({"detail": f"run {run.pk} is {run.status}; only failed or cancelled runs "
                                             "can be retried"})
        run.status, run.error, run.cancel_requested, run.attempts = Run.Status.QUEUED, "", False, 0
        run.finished_at, run.heartbeat = None, timezone.now()
        run.save()
    _launch(run, run.stage or Run.STAGES[0])
    return run


def create_run(user, dataset: Dataset, name: str, config: dict, tags: list[str]) -> Run:
    """A validated run row, enqueued once committed."""
    run = Run.objects.create(owner=user, dataset=dataset, name=name, tags=tags, config=config,
                             heartbeat=timezone.now())
    _launch(run)
    return run


def delete_run(run: Run) -> None:
    """Delete a finished run with its files; ValidationError while it is queued or running."""
    if run.status in (Run.Status.QUEUED, Run.Status.RUNNING):
        raise ValidationError({"detail": f"run {run.pk} is {run.status}; cancel it first"})
    from webapp.studio.pipeline import run_dir
    directory = run_dir(run)
    run.delete()
    shutil.rmtree(directory, ignore_errors=True)
    _students.pop(run.pk)


def _launch(run: Run, stage: str | None = None) -> None:
    """Enqueue the run's stage once the row is committed. If the broker is unreachable the run
    stays queued in the database, and a worker's recovery loop enqueues it when it can."""
    from worker.tasks import enqueue_stage

    def send() -> None:
        try:
            enqueue_stage(run.pk, stage or Run.STAGES[0])
        except Exception:
            logging.getLogger(__name__).warning("run %s: broker unreachable, left queued for recovery", run.pk,
                                                exc_info=True)

    transaction.on_commit(send)


class _StudentCache:
    """Distilled students kept loaded in memory (LRU), so /recommend answers in milliseconds."""

    def __init__(self, size: int = 16) -> None:
        self.size, self.lock, self.models = size, threading.Lock(), OrderedDict()

    def get(self, run: Run):
        from distill.train import TrainedStudent
        from webapp.studio.pipeline import run_dir
        with self.lock:
            if run.pk in self.models:
                self.models.move_to_end(run.pk)
                return self.models[run.pk]
        student = TrainedStudent.load(run_dir(run) / "distilled")
        with self.lock:
            self.models[run.pk] = student
            while len(self.models) > self.size:
                self.models.popitem(last=False)
        return student

    def pop(self, run_id: int) -> None:
        with self.lock:
            self.models.pop(run_id, None)


_students = _StudentCache()
