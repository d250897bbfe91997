"""The dashboard's forms. The new-run form is generated from the run config schema
(`distill.config.TrainConfig`: its fields, defaults and one-line comments) and the teacher
backends' options, and validated by the same `validate_config` as the REST API, so the two never
disagree on what a valid run is."""

from __future__ import annotations

import json
import re
from functools import lru_cache

from django import forms
from rest_framework import serializers

from webapp.studio.models import Dataset
from webapp.studio.serializers import text_problem
from distill.config import STUDENTS
from distill.teacher.registry import LEGACY_BACKENDS, legacy_kind
from webapp.studio.services import ServiceError, teacher_options, validate_config

CHOICES = {
    "selection": ("val", "test"),
    "confidence": ("candidate", "paper"),
    "dro_weighting": ("instance", "official"),
    "projector": ("linear", "mlp"),
    "distill_precision": ("auto", "bf16", "fp32"),
    "device": None,  # free text: auto | cpu | cuda | cuda:N
}
# Shown outside the "advanced" fold: what most runs change.
COMMON = {"epochs", "patience", "batch_size", "lr", "hidden", "seed", "device", "lam", "candidate_k", "ed_weight"}
TEACHER_HELP = {
    "backend": "semantic: a sentence encoder over titles (fast, CPU); titles: TF-IDF of titles; "
               "hf / vllm: BIGRec, a (LoRA-tuned) LLM that writes the next title, grounded to items; openai: "
               "BIGRec on an OpenAI-compatible server the operator allows (url, served_model in the options below)",
    "model": "local model directory; empty = the backend's default (all-MiniLM-L6-v2 / SmolLM2-135M)",
    "adapter": "LoRA adapter directory from `distill teacher finetune` (hf / vllm only)",
    "k": "length of the teacher's ranked list per instance (the student uses the first candidate_k)",
    "shards": "hf / vllm: split teacher inference into this many tasks on the gpu queue",
    "exclude_history": "drop items the user has already seen from the teacher's list",
    "budget": "rank only part of the training instances: a count (2000) or a fraction (0.1); empty = all. "
              "Rankings are distilled on those, item embeddings everywhere (budget_rule, budget_seed: other options)",
    "extra": "other teacher options as a JSON object, e.g. {\"beams\": 4, \"budget_rule\": \"recent\"}",
}
TEACHER_FIELDS = ("model", "adapter", "k", "shards", "exclude_history", "budget")


@lru_cache(maxsize=1)
def config_schema() -> list[dict]:
    """[{name, section, type, default, help, choices, common}] for every TrainConfig option but
    `student`, from the fields' own metadata (`distill.config.config_fields`)."""
    from distill.config import config_fields
    return [{**option, "choices": CHOICES.get(option["name"]), "common": option["name"] in COMMON}
            for option in config_fields() if option["name"] != "student"]


def default_config(student: str = "sasrec") -> dict:
    from distill.config import TrainConfig
    return TrainConfig(student=student).to_dict()


class StudentField(forms.ChoiceField):
    """One of distill.config.STUDENTS, in any letter case (cleaned to lower case), as the API's."""

    def __init__(self, **kwargs):
        super().__init__(choices=[(s, s) for s in STUDENTS], error_messages={
            "invalid_choice": f"unknown student %(value)r; the students are {', '.join(STUDENTS)}"}, **kwargs)

    def to_python(self, value):
        return super().to_python(value).lower()


class RunForm(forms.Form):
    """name, dataset, tags, student, teacher_*, then train__<option> / distill__<option> for every option."""

    name = forms.CharField(max_length=200, help_text="a name to find the run by")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), help_text="a dataset of yours (a run on one still being prepared waits for it)")
    tags = forms.CharField(required=False, max_length=500, help_text="comma-separated, e.g. sweep-1, ml100k")
    student = StudentField(initial="sasrec", help_text="the sequential recommender to distil into")
    seeds = forms.IntegerField(initial=1, min_value=1, max_value=20, label="Seeds",
                               help_text="students per role (seeds 0..n-1, shared by plain and distilled): "
                                         "3 or more give the verdict an interval over training noise")
    teacher_backend = forms.ChoiceField(choices=[(b, b) for b in LEGACY_BACKENDS], initial="semantic",
                                        label="Teacher backend", help_text=TEACHER_HELP["backend"])
    teacher_model = forms.CharField(required=False, max_length=500, label="Teacher model",
                                    help_text=TEACHER_HELP["model"])
    teacher_adapter = forms.CharField(required=False, max_length=500, label="Teacher adapter",
                                      help_text=TEACHER_HELP["adapter"])
    teacher_k = forms.IntegerField(initial=20, min_value=1, max_value=1000, label="Teacher list length k",
                                   help_text=TEACHER_HELP["k"])
    teacher_shards = forms.IntegerField(initial=1, min_value=1, max_value=64, label="Teacher shards",
                                        help_text=TEACHER_HELP["shards"])
    teacher_exclude_history = forms.BooleanField(required=False, label="Teacher excludes history",
                                                 help_text=TEACHER_HELP["exclude_history"])
    teacher_budget = forms.CharField(required=False, max_length=20, label="Teacher budget",
                                     help_text=TEACHER_HELP["budget"])
    teacher_extra = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                    label="Other teacher options (JSON)", help_text=TEACHER_HELP["extra"])

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # A dataset still being prepared is fine: the run waits for it.
        self.fields["dataset"].queryset = Dataset.objects.filter(owner=user).exclude(status=Dataset.Status.FAILED)
        self.option_fields = []
        for option in config_schema():
            name = f"{option['section']}__{option['name']}"
            self.fields[name] = _option_field(option)
            self.option_fields.append((name, option))

    def groups(self) -> list[tuple[str, str, list]]:
        """(title, id, [bound fields]) in the order the page shows them."""
        pick = lambda names: [self[n] for n in names]  # noqa: E731
        train = [(n, o) for n, o in self.option_fields if o["section"] == "train"]
        distill = [(n, o) for n, o in self.option_fields if o["section"] == "distill"]
        return [
            ("Run", "run", pick(["name", "dataset", "tags", "student", "seeds"])),
            ("Teacher", "teacher", pick(["teacher_backend", "teacher_model", "teacher_adapter", "teacher_k",
                                         "teacher_shards", "teacher_exclude_history", "teacher_budget",
                                         "teacher_extra"])),
            ("Training", "train", pick([n for n, o in train if o["common"]])),
            ("Distillation", "distill", pick([n for n, o in distill if o["common"]])),
            ("Advanced training", "train-advanced", pick([n for n, o in train if not o["common"]])),
            ("Advanced distillation", "distill-advanced", pick([n for n, o in distill if not o["common"]])),
        ]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        backend = data["teacher_backend"]   # semantic | titles | hf | vllm (hf, vllm: the bigrec kind)
        kind = legacy_kind(backend)
        allowed = teacher_options(kind)
        teacher: dict = {"kind": kind, "backend": backend} if kind == "bigrec" else {"kind": kind}
        extra = {}
        if data.get("teacher_extra", "").strip():
            try:
                extra = json.loads(data["teacher_extra"])
            except json.JSONDecodeError as exc:
                self.add_error("teacher_extra", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
                return data
            if not isinstance(extra, dict):
                self.add_error("teacher_extra", "must be a JSON object, e.g. {\"beams\": 4}")
                return data
            if text_problem(extra):
                self.add_error("teacher_extra", text_problem(extra))
                return data
        budget = None
        if data.get("teacher_budget", "").strip():
            from distill.errors import ConfigError
            from distill.teacher.budget import parse_budget_text
            try:
                budget = parse_budget_text(data["teacher_budget"])
            except ConfigError as exc:
                self.add_error("teacher_budget", str(exc).replace("--budget ", ""))
                return data
        values = {"model": data.get("teacher_model") or None, "adapter": data.get("teacher_adapter") or None,
                  "k": data.get("teacher_k"), "shards": data.get("teacher_shards"),
                  "exclude_history": data.get("teacher_exclude_history"), "budget": budget}
        defaults = {"k": 20, "shards": 1, "exclude_history": False}
        for key, value in values.items():
            if value is None or value == defaults.get(key):
                continue
            if key not in allowed:
                self.add_error(f"teacher_{key}", f"the {backend} teacher takes no {key} option")
                continue
            teacher[key] = value
        if "k" in allowed:
            teacher["k"] = values["k"] or 20
        for key, value in extra.items():
            if key in teacher and key not in ("kind", "backend"):
                self.add_error("teacher_extra", f"{key!r} has its own field above")
            teacher[key] = value
        if self.errors:
            return data
        sections: dict[str, dict] = {"train": {}, "distill": {}}
        for name, option in self.option_fields:
            value = data.get(name)
            if option["type"].startswith("str") and value == "":
                value = option["default"]
            if value != option["default"] and not (value is None and option["default"] is None):
                sections[option["section"]][option["name"]] = value
        try:
            data["config"] = validate_config(data["student"], teacher, sections["distill"], sections["train"])
        except ServiceError as exc:
            self.add_error(self._field_for(exc.field, exc.message), exc.message)
        tags = [t.strip() for t in data.get("tags", "").split(",") if t.strip()]
        if len(tags) > 20 or any(len(t) > 50 for t in tags):
            self.add_error("tags", "at most 20 tags of at most 50 characters each")
        data["tag_list"] = tags
        return data

    def _field_for(self, section: str, message: str) -> str | None:
        """The form field an error message is about: `lr=-1: must be > 0` -> train__lr."""
        if section == "teacher":
            for key in TEACHER_FIELDS:
                if re.search(rf"\b{key}\b", message):
                    return f"teacher_{key}"
            return "teacher_extra" if "option" in message else "teacher_backend"
        if section == "student":
            section = None
        for token in re.findall(r"[a-z_]+", message):
            for candidate in ((f"{section}__{token}",) if section else ("train__" + token, "distill__" + token)):
                if candidate in self.fields:
                    return candidate
        return "student" if section is None else None


def _option_field(option: dict) -> forms.Field:
    kind, default = option["type"], option["default"]
    label = option["name"]   # the option's own name, as in `--set` and the API
    common = {"label": label, "help_text": option["help"], "initial": default}
    if option["choices"]:
        return forms.ChoiceField(choices=[(c, c) for c in option["choices"]], **common)
    if kind.startswith("bool"):
        return forms.BooleanField(required=False, **common)
    if kind.startswith("int"):
        return forms.IntegerField(**common)
    if kind.startswith("float"):
        return forms.FloatField(required="None" not in kind, **common)
    return forms.CharField(max_length=200, required=False, **common)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one input (`<input type=file multiple>`): cleans to a list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if not data:
            return []
        values = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(value, initial) for value in values]


class DatasetUploadForm(forms.Form):
    """The REST upload's fields: name, format (or recognised from the names), the files, and the
    prepare options (from `distill.data.prepare.prepare_fields`, as the API's)."""

    name = forms.CharField(max_length=200, help_text="a name to find the dataset by")
    format = forms.ChoiceField(required=False, choices=[
        ("", "Recognise from the file names"),
        ("movielens", "MovieLens (u.data + u.item, ratings.dat + movies.dat, ratings.csv + movies.csv)"),
        ("csv", "CSV (user,item,timestamp + item,title)"),
        ("recbole", "RecBole / UniSRec atomic files (.inter + .item/.text, or .train/.valid/.test.inter)"),
        ("reference", "DLLM2Rec reference splits")], help_text="the layout of the files below")
    files = MultipleFileField(required=False, label="Files", help_text=(
        "every file of the dataset, named as you have them (e.g. Office.train.inter, Office.valid.inter, "
        "Office.test.inter, Office.text, Office.item2index); select several at once"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The one-file fields the API also takes, with the API's help texts.
        from webapp.studio.serializers import DatasetUploadSerializer
        for role, field in DatasetUploadSerializer().fields.items():
            if isinstance(field, serializers.FileField):
                self.fields[role] = forms.FileField(required=False, help_text=field.help_text)
        from distill.data.prepare import prepare_fields
        self.option_names = []
        for option in prepare_fields():
            choices = option.get("choices")
            common = {"required": False, "label": option["name"], "help_text": option["help"]}
            if choices:
                field = forms.ChoiceField(choices=[("", f"default ({option['default']})")] + [(c, c) for c in choices],
                                          **common)
            else:
                field = forms.CharField(max_length=200, strip=False,
                                        widget=forms.TextInput(attrs={"placeholder": "" if option["default"] is None
                                                                      else str(option["default"])}), **common)
            self.fields[option["name"]] = field
            self.option_names.append(option["name"])

    def option_fields(self):
        return [self[name] for name in self.option_names]

    def role_fields(self):
        return [self[role] for role in ("interactions", "items", "train", "val", "test", "statis")]
