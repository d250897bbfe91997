"""Stored teacher sections in the new spelling: {"backend": semantic|titles|hf|vllm} becomes
{"kind": semantic|titles|bigrec, ...} (bigrec keeps its generation backend, hf|vllm). The teacher
cache is keyed by the teacher section, so its entries get the new key (and their directory under
STORAGE_ROOT/teachers the new name). Self-contained: it does not import the service's code."""

import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.db import migrations

NOT_IN_KEY = {"shards"}


def to_kind(teacher):
    if not isinstance(teacher, dict) or "kind" in teacher:
        return teacher
    options = dict(teacher)
    backend = options.pop("backend", "semantic")
    if backend in ("hf", "vllm"):
        return {"kind": "bigrec", "backend": backend, **options}
    return {"kind": backend, **options}


def to_backend(teacher):
    if not isinstance(teacher, dict) or "kind" not in teacher:
        return teacher
    options = dict(teacher)
    kind = options.pop("kind")
    backend = options.pop("backend", "hf") if kind == "bigrec" else kind
    return {"backend": backend, **options}


def key_of(dataset_hash, teacher):
    teacher = {key: value for key, value in teacher.items() if key not in NOT_IN_KEY}
    source = json.dumps({"dataset": dataset_hash, "teacher": teacher}, sort_keys=True)
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def rewrite(apps, convert):
    Run = apps.get_model("studio", "Run")
    for run in Run.objects.all().only("pk", "config"):
        config = run.config if isinstance(run.config, dict) else {}
        if "teacher" in config:
            new = convert(config["teacher"])
            if new != config["teacher"]:
                Run.objects.filter(pk=run.pk).update(config={**config, "teacher": new})
    Entry = apps.get_model("studio", "TeacherCacheEntry")
    teachers = Path(settings.STORAGE_ROOT) / "teachers"
    for entry in Entry.objects.all():
        config = convert(entry.config)
        if config == entry.config:
            continue
        key = key_of(entry.dataset_hash, config)
        path = Path(entry.path)
        if path.parent == teachers and path.name == entry.key and path.is_dir() and not (teachers / key).exists():
            path = path.rename(teachers / key)
        elif path.parent == teachers and path.name == entry.key:
            path = teachers / key
        if Entry.objects.filter(key=key).exclude(pk=entry.pk).exists():
            entry.delete()
            continue
        entry.key, entry.config, entry.path = key, config, str(path)
        entry.save(update_fields=["key", "config", "path"])


def forwards(apps, schema_editor):
    rewrite(apps, to_kind)


def backwards(apps, schema_editor):
    rewrite(apps, to_backend)


class Migration(migrations.Migration):

    dependencies = [
        ('studio', '0002_dashboard'),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
