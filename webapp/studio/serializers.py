"""The REST API's request and response shapes. Validation beyond a field's type lives in
`webapp.studio.services` (shared with the dashboard)."""

from __future__ import annotations

from rest_framework import serializers

from distill.config import STUDENTS

from webapp.studio.models import Dataset, Run


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = ["id", "name", "format", "status", "progress", "message", "stats", "error", "content_hash",
                  "files", "options", "created_at", "finished_at"]
        read_only_fields = fields


def _prepare_option_fields() -> dict:
    """One text field per `prepare` option, with the library's help (distill.data.prepare.prepare_fields)."""
    from distill.data.prepare import prepare_fields
    out = {}
    for option in prepare_fields():
        bounds = ""
        if option.get("choices"):
            bounds = f" ({'|'.join(option['choices'])})"
        elif option.get("min") is not None or option.get("max") is not None:
            bounds = f" ({option.get('min')}..{option.get('max')})"
        out[option["name"]] = serializers.CharField(
            required=False, allow_blank=True, max_length=200,
            help_text=f"{option['help']}{bounds}; default {option['default']!r}")
    return out


class DatasetUploadSerializer(serializers.Serializer):
    """The upload's fields (for the schema and the types; services.create_dataset checks the rest)."""
    name = serializers.CharField(max_length=200)
    format = serializers.ChoiceField(choices=Dataset.FORMATS, required=False,
                                     help_text="the files' layout; left out, it is recognised from the file names")
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), required=False, max_length=50,
                                  help_text="the dataset's files (repeat the field), recognised by their own names "
                                            "as `prepare --input DIR` recognises the files of a directory")
    interactions = serializers.FileField(required=False, allow_empty_file=True, help_text="interactions / ratings file (or use `files`)")
    items = serializers.FileField(required=False, allow_empty_file=True, help_text="item titles file (or use `files`)")
    train = serializers.FileField(required=False, allow_empty_file=True, help_text="reference format: train_data.csv")
    val = serializers.FileField(required=False, allow_empty_file=True, help_text="reference format: val_data.csv")
    test = serializers.FileField(required=False, allow_empty_file=True, help_text="reference format: test_data.csv")
    statis = serializers.FileField(required=False, allow_empty_file=True, help_text="reference format: data_statis.csv")

    def get_fields(self):
        return {**super().get_fields(), **_prepare_option_fields()}


class RunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    student = serializers.ChoiceField(choices=STUDENTS, default="sasrec")
    teacher = serializers.JSONField(default=dict, help_text="{kind: semantic|titles|bigrec, k, ...} (bigrec: backend hf|vllm, shards); the old {backend: semantic|titles|hf|vllm} is accepted")
    distill = serializers.JSONField(default=dict, help_text="distillation options, e.g. {lam: auto}")
    train = serializers.JSONField(default=dict, help_text="training options, e.g. {epochs: 3, seed: 1}")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list, max_length=20)


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
