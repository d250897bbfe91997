"""What Postgres keeps: datasets, runs (config, status, stage, progress, attempts, error), per-epoch
curves, final metrics (role x split x metric x K), latency, the artifact index, the teacher cache."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Dataset(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    FORMATS = ("csv", "recbole", "movielens", "reference")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    format = models.CharField(max_length=20, choices=[(f, f) for f in FORMATS])
    # [{"name": stored file name (under upload_dir), "size": bytes, "role": legacy field or null}]
    files = models.JSONField(default=list)
    options = models.JSONField(default=dict, blank=True)   # the prepare options given (name -> value)
    upload_dir = models.CharField(max_length=500, blank=True)
    prepared_dir = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING)
    stats = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    # Preparation in the worker (webapp/studio/tasks.py prepare_dataset): what it is doing, how far,
    # which task holds it, when it last showed life, and how often it was delivered.
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="dataset_name_unique_per_owner")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Study(models.Model):
    """A sweep as one job: one child run per point of a grid (or random search) over a base run
    config, all sharing one teacher computation; the best point is chosen on val
    (webapp/studio/studies.py)."""
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="studies")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="studies")
    name = models.CharField(max_length=200)
    base = models.JSONField(default=dict)        # the validated run config every point starts from
    space = models.JSONField(default=dict)       # {"grid": {key: [values]}} or {"random": {n, space, seed}}
    points = models.JSONField(default=list)      # [{key: value}] in child order
    metric = models.CharField(max_length=20, default="ndcg@20")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"study {self.pk} {self.name}"


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=200)
    tags = models.JSONField(default=list, blank=True)
    config = models.JSONField(default=dict)   # {student, teacher: {...}, distill: {...}, train: {...}}
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=20, blank=True)
    stage_message = models.CharField(max_length=300, blank=True)
    progress = models.FloatField(default=0.0)
    attempts = models.PositiveIntegerField(default=0)          # deliveries of the current stage
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=100, blank=True)
    cancel_requested = models.BooleanField(default=False)
    heartbeat = models.DateTimeField(null=True, blank=True)
    # {stage: {"started": iso time, "finished": iso time, "seconds": s}} for the dashboard's stage table
    stage_times = models.JSONField(default=dict, blank=True)
    # analyses computed after training, e.g. {"overlap@20": {"baseline": 0.31, "distilled": 0.52}}
    analysis = models.JSONField(default=dict, blank=True)
    # A study's child: its study, its point's index, and (while another child computes the shared
    # teacher) that child, which starts this one when the teacher is there.
    study = models.ForeignKey(Study, on_delete=models.CASCADE, null=True, blank=True, related_name="runs")
    study_index = models.PositiveIntegerField(null=True, blank=True)
    waiting_for = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="followers")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self) -> str:
        return f"run {self.pk} {self.name} ({self.status})"


class RunEvent(models.Model):
    """One line of a run's log: stage starts and ends, progress messages, errors (the log tail)."""
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    stage = models.CharField(max_length=20, blank=True)
    level = models.CharField(max_length=10, default="info")   # info | error
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]


class EpochMetric(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="epochs")
    role = models.CharField(max_length=20)     # baseline | distilled
    lam = models.FloatField(null=True)         # the lambda_d candidate this curve belongs to
    seed = models.PositiveIntegerField(default=0)
    epoch = models.PositiveIntegerField()
    loss = models.FloatField(null=True)
    seconds = models.FloatField(null=True)
    val = models.JSONField(default=dict)

    class Meta:
        ordering = ["role", "lam", "seed", "epoch"]
        constraints = [models.UniqueConstraint(fields=["run", "role", "lam", "seed", "epoch"],
                                               name="one_row_per_seed_epoch")]


class Metric(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    role = models.CharField(max_length=20)     # teacher | baseline | distilled | most_popular
    split = models.CharField(max_length=10)    # val | test
    metric = models.CharField(max_length=10)   # hr | ndcg | mrr
    k = models.PositiveIntegerField()
    value = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "role", "split", "metric", "k"], name="one_value")]


class Latency(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="latency")
    role = models.CharField(max_length=20)
    device = models.CharField(max_length=200)
    batch_size = models.PositiveIntegerField(null=True)
    p50_ms = models.FloatField()
    p95_ms = models.FloatField()
    throughput = models.FloatField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "role"], name="one_latency_per_role")]


class Artifact(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=40)     # teacher | baseline | distilled
    path = models.CharField(max_length=500)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "kind", "path"], name="one_artifact_row")]


class TeacherCacheEntry(models.Model):
    """A teacher computed once for a (prepared dataset, teacher config) and reused by every run."""
    key = models.CharField(max_length=64, unique=True)
    dataset_hash = models.CharField(max_length=64)
    config = models.JSONField(default=dict)
    path = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    hits = models.PositiveIntegerField(default=0)
