"""A BIGRec teacher fanned out over gpu-queue shard tasks merges into the bytes of one unsharded job."""

import re

import pytest

from webapp.studio.models import Run
from tests.factories import RUN, poll_run, prepared, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_bigrec_teacher_fans_out_over_gpu_shards_and_merges_like_one_job(worker, client, tmp_path):
    """teacher {backend: hf, shards: 2}: two shard tasks on the gpu queue, merged, then the run
    goes on; the merged teacher has the bytes of an unsharded run of the same teacher."""
    from django.conf import settings

    from distill.data import PreparedDataset
    from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
    from distill.teacher.tiny import build_tiny_llm
    from webapp.studio.stages import teacher_dir
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()
    titles = [f"The {w.title()} Story ({1980 + i})" for i, w in enumerate(words)]
    interactions = "user_id,item_id,timestamp\n" + "".join(
        f"{u},{(u + step) % len(titles)},{u * 100 + step}\n" for u in range(30) for step in range(8))
    items = "item_id,title\n" + "".join(f"{i},{t}\n" for i, t in enumerate(titles))
    dataset = prepared(client, upload(client, name="films", fmt="csv", interactions=("i.csv", interactions.encode()),
                                      items=("t.csv", items.encode())))
    assert dataset["status"] == "ready", dataset["error"]
    model = settings.STORAGE_ROOT / "models" / "tiny"
    build_tiny_llm(model, titles)
    teacher = {"backend": "hf", "model": str(model), "k": 5, "max_new_tokens": 6, "block": 32, "batch": 16,
               "latency_requests": 2, "max_empty": 1.0, "shards": 2}
    run_id = client.post("/api/runs/", {**RUN, "name": "sharded", "teacher": teacher, "distill": {"lam": 0.3,
                                        "candidate_k": 5}, "dataset": dataset["id"]},
                         format="json").json()["id"]
    body = poll_run(client, run_id)
    assert body["status"] == "succeeded", body["error"]
    assert "teacher" in body["metrics"] and body["latency"]["teacher"]["p50_ms"] > 0
    log = worker.log.read_text()
    assert len(re.findall(r"Task studio\.teacher_shard\[[^\]]+\] succeeded", log)) == 2, log[-3000:]
    run = Run.objects.get(pk=run_id)
    dataset = PreparedDataset.load(run.dataset.prepared_dir)
    options = {k: v for k, v in teacher.items() if k not in ("backend", "model", "shards")}
    bigrec_teacher(dataset, tmp_path / "whole", model, options=BigRecOptions(backend="hf", **options),
                   cache=tmp_path / "cache")
    for name in ("ranks.safetensors", "teacher.json", "generations.jsonl", "metrics.json"):
        assert (tmp_path / "whole" / name).read_bytes() == (teacher_dir(run) / name).read_bytes(), name
