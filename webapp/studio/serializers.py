"""The REST API's request and response shapes, and what any request's text must be before it
reaches the database (`parse_id`, `text_problem`: the dashboard uses them too). Validation beyond
a field's type lives in `webapp.studio.services` (shared with the dashboard)."""

from __future__ import annotations

import re

from rest_framework import serializers

from distill.config import STUDENTS

from webapp.studio.models import Dataset, Run, Study

# An object id as a request spells it: ASCII digits only (str.isdigit also takes "²", which int()
# refuses, and int() takes "٣"), at most 18 of them (below 2**63: every database compares it).
ID = re.compile(r"[0-9]{1,18}")
MAX_ID = 10**18 - 1


def parse_id(text: str) -> int | None:
    """The id `text` spells, or None when it is not one."""
    return int(text) if ID.fullmatch(text) else None


def text_problem(value, where: str = "") -> str | None:
    """Why `value` cannot be stored or compared (a NUL character: Postgres text and jsonb refuse
    it; a lone surrogate: not UTF-8), or None. JSON objects and lists are walked, keys included;
    the message starts with the path to the string (`model: ...`)."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{where}must not contain a NUL character (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{where}must be UTF-8 text (it holds a lone surrogate)"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key, f"{where}a key ") or text_problem(item, f"{where}{key}: ")
            if problem:
                return problem
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = text_problem(item, f"{where}[{index}]: ")
            if problem:
                return problem
    return None


def refuse_bad_text(value) -> None:
    """A field validator: `text_problem` as a 400 on the field."""
    problem = text_problem(value)
    if problem:
        raise serializers.ValidationError(problem)


class StudentField(serializers.ChoiceField):
    """One of distill.config.STUDENTS, in any letter case (stored in lower case)."""

    def __init__(self, **kwargs):
        super().__init__(choices=STUDENTS, error_messages={
            "invalid_choice": "unknown student {input!r}; the students are " + ", ".join(STUDENTS)}, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and not text_problem(data):
            data = data.lower()
        return super().to_internal_value(data)


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
                                     error_messages={"invalid_choice": "unknown format {input!r}; known: "
                                                                       + ", ".join(Dataset.FORMATS)},
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
    """The run's fields; every string in them, the config's included, passes `text_problem`
    (DRF's CharField refuses NUL and lone surrogates on its own; the JSON fields are walked)."""
    dataset = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    name = serializers.CharField(max_length=200)
    student = StudentField(default="sasrec")
    teacher = serializers.JSONField(default=dict, validators=[refuse_bad_text], help_text="{kind: semantic|titles|bigrec, k, ...} (bigrec: backend hf|vllm, shards); the old {backend: semantic|titles|hf|vllm} is accepted")
    distill = serializers.JSONField(default=dict, validators=[refuse_bad_text], help_text="distillation options, e.g. {lam: auto}")
    train = serializers.JSONField(default=dict, validators=[refuse_bad_text], help_text="training options, e.g. {epochs: 3, seed: 1}")
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list, max_length=20)
    seeds = serializers.IntegerField(default=1, min_value=1, max_value=20,
                                     help_text="students per role, trained with seeds 0..seeds-1 (plain and distilled share each seed)")
    seed_list = serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=2**31 - 1), required=False,
                                      min_length=1, max_length=20, help_text="the seeds by name instead, e.g. [3, 7, 11]")


def metrics_of(run: Run) -> dict:
    out: dict = {}
    for m in run.metrics.all():
        out.setdefault(m.role, {}).setdefault(m.split, {})[f"{m.metric}@{m.k}"] = m.value
    return out


def latency_of(run: Run) -> dict:
    return {row.role: {"p50_ms": row.p50_ms, "p95_ms": row.p95_ms, "throughput": row.throughput,
                       "device": row.device, "batch_size": row.batch_size} for row in run.latency.all()}


class RunListSerializer(serializers.ModelSerializer):
    chosen = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "name", "dataset", "study", "status", "stage", "progress", "tags", "chosen", "created_at",
                  "finished_at"]

    def get_chosen(self, run) -> dict:
        """{role: {lam, best_epoch, stopped_by, epochs_run, epochs}} once the role is trained (the
        lam=auto candidates are in the run's detail)."""
        return {role: {k: v for k, v in entry.items() if k != "lam_auto"}
                for role, entry in (run.analysis.get("chosen") or {}).items()}


def comparison_of(run: Run) -> dict | None:
    """The run's paired comparison (distilled vs plain, vs teacher), once its latency stage ran."""
    return run.analysis.get("comparison")


def chosen_of(run: Run) -> dict:
    from webapp.studio.stages import chosen
    return chosen(run) if run.status == Run.Status.SUCCEEDED or run.stage in ("distilled", "latency") else {}


class RunSerializer(serializers.ModelSerializer):
    metrics = serializers.SerializerMethodField()
    uncertainty = serializers.SerializerMethodField()
    per_seed = serializers.SerializerMethodField()
    latency = serializers.SerializerMethodField()
    comparison = serializers.SerializerMethodField()
    chosen = serializers.SerializerMethodField()
    report = serializers.SerializerMethodField()
    study = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = Run
        fields = ["id", "name", "dataset", "study", "tags", "config", "status", "stage", "stage_message", "progress",
                  "attempts", "error", "metrics", "uncertainty", "per_seed", "latency", "comparison", "chosen",
                  "report", "created_at", "started_at", "finished_at"]

    def get_uncertainty(self, run) -> dict:
        """{role: {split: {metric: {mean, std, ci95: [lo, hi], n}}}}: the t interval over the run's seeds."""
        return run.analysis.get("uncertainty", {})

    def get_per_seed(self, run) -> dict:
        """{role: [{seed, val, test, lam, best_epoch, stopped_by, epochs_run}]}: each seed's student."""
        return run.analysis.get("per_seed", {})

    def get_report(self, run) -> dict | None:
        """The reliability report (docs/method.md), once the latency stage ran."""
        return run.analysis.get("report")

    def get_metrics(self, run) -> dict:
        return metrics_of(run)

    def get_latency(self, run) -> dict:
        return latency_of(run)

    def get_comparison(self, run) -> dict | None:
        return comparison_of(run)

    def get_chosen(self, run) -> dict:
        return chosen_of(run)


class StudyCreateSerializer(serializers.Serializer):
    """A sweep: a base run config and a grid (or a random search) over its options."""
    dataset = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    name = serializers.CharField(max_length=200)
    base = serializers.JSONField(default=dict, validators=[refuse_bad_text],
                                 help_text="a run config: {student, teacher, distill, train, seeds}")
    grid = serializers.JSONField(required=False, allow_null=True, validators=[refuse_bad_text],
                                 help_text='{"distill.lam": [0, 0.3, 0.7], "student": ["sasrec", "dros"]}')
    random = serializers.JSONField(required=False, allow_null=True, validators=[refuse_bad_text],
                                   help_text='{"n": 8, "space": {"distill.lam": {"low": 0, "high": 1}}, "seed": 0}')
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list, max_length=20)


class StudyListSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = ["id", "name", "dataset", "status", "created_at"]

    def get_status(self, study) -> str:
        from webapp.studio.studies import status_of
        return status_of(study)


class StudySerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    children = serializers.SerializerMethodField()
    best = serializers.SerializerMethodField()
    teacher_computations = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = ["id", "name", "dataset", "base", "space", "points", "metric", "status", "counts", "children",
                  "best", "teacher_computations", "created_at"]

    def _summary(self, study) -> dict:
        from webapp.studio.studies import summary
        if getattr(self, "_cached", (None,))[0] != study.pk:
            self._cached = (study.pk, summary(study))
        return self._cached[1]

    def get_status(self, study) -> str:
        return self._summary(study)["status"]

    def get_counts(self, study) -> dict:
        return self._summary(study)["counts"]

    def get_children(self, study) -> list:
        """[{run, index, point, status, error, val, test, lam, teacher_cached}] in point order."""
        return self._summary(study)["children"]

    def get_best(self, study) -> dict | None:
        """The succeeded child with the best val metric, with its test metrics, t interval and comparison."""
        return self._summary(study)["best"]

    def get_teacher_computations(self, study) -> int:
        """How many children computed a teacher (the rest found it cached): 1 for a study."""
        return self._summary(study)["teacher_computations"]
