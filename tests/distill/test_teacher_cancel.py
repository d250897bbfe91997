"""A cancel hook stops every teacher within a batch (BIGRec's hf backend: within a generation step),
raises Cancelled and leaves no complete artifacts; BIGRec's block cache keeps only finished blocks."""

import pytest

import distill.train
from distill.errors import Cancelled
from distill.recipe import ensure_teacher
from distill.teacher import bigrec as bigrec_module
from distill.teacher import build_teacher
from distill.teacher.backends import open_backend
from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
from distill.teacher.tiny import build_tiny_llm
from distill.teacher.vllm_backend import VLLMBackend

from factories import WORDS, chain_dataset

FILES = ["ranks.safetensors", "item_embeddings.safetensors", "teacher.json", "metrics.json", "generations.jsonl"]
# Random weights rarely write the end token, so every prompt takes all 32 generation steps.
OPTIONS = dict(k=5, block=8, batch=4, max_new_tokens=32, latency_requests=0, limit=16, max_empty=1.0)


def titled_dataset():
    return chain_dataset(num_items=24, users=12, length=8,
                         titles=[f"The {w.title()} Story ({1980 + i})" for i, w in enumerate(WORDS)])


def cancel_after(checks: int):
    """A hook that says no `checks` times, then yes; `calls` counts how often it was asked."""
    def should_cancel():
        should_cancel.calls += 1
        return should_cancel.calls > checks
    should_cancel.calls = 0
    return should_cancel


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cancel-bigrec")
    dataset = titled_dataset()
    build_tiny_llm(root / "tiny", dataset.titles)
    return dataset, root / "tiny"


def test_cancelled_is_one_class_wherever_it_is_imported_from():
    assert distill.train.Cancelled is Cancelled


@pytest.mark.parametrize("kind, options", [("titles", {"k": 5, "dim": 16}), ("semantic", {"k": 5})])
def test_a_teacher_cancelled_after_its_first_check_leaves_no_artifacts(kind, options, tmp_path):
    should_cancel = cancel_after(1)
    with pytest.raises(Cancelled, match="^run cancelled$"):
        build_teacher(kind, titled_dataset(), tmp_path / "teacher", should_cancel=should_cancel, **options)
    assert should_cancel.calls == 2
    assert not (tmp_path / "teacher").exists()


def test_the_semantic_teacher_in_text_mode_checks_while_it_encodes_histories(tmp_path):
    should_cancel = cancel_after(1)
    with pytest.raises(Cancelled):
        build_teacher("semantic", titled_dataset(), tmp_path / "teacher", should_cancel=should_cancel, k=5,
                      history="text")
    assert not (tmp_path / "teacher").exists()


def test_ensure_teacher_passes_the_hook_on(tmp_path):
    with pytest.raises(Cancelled):
        ensure_teacher(titled_dataset(), {"kind": "titles", "k": 5}, tmp_path / "teacher",
                       should_cancel=lambda: True)
    assert not (tmp_path / "teacher").exists()


def test_the_vllm_backend_asks_before_it_generates_or_embeds():
    backend = VLLMBackend.__new__(VLLMBackend)  # no engine: the hook is asked before vLLM is touched
    backend.should_cancel = lambda: True
    with pytest.raises(Cancelled):
        backend.generate(["a prompt"])
    with pytest.raises(Cancelled):
        backend.embed(["a title"])


def test_bigrec_hf_stops_within_a_generation_step(tiny, tmp_path, monkeypatch):
    dataset, model = tiny
    forwards = []
    real_open = bigrec_module.open_backend

    def counting_open(*args, **kwargs):
        backend = real_open(*args, **kwargs)
        backend.model.register_forward_hook(lambda *_: forwards.append(1))
        return backend

    monkeypatch.setattr(bigrec_module, "open_backend", counting_open)
    # 2 forward passes embed the 24 titles (16 a batch); the 3rd is the first batch's prompt, the 4th
    # its first generated token: cancel there, mid-generation.
    with pytest.raises(Cancelled):
        bigrec_teacher(dataset, tmp_path / "out", model, options=BigRecOptions(**OPTIONS), cache=tmp_path / "c",
                       should_cancel=lambda: len(forwards) >= 4)
    assert len(forwards) == 4  # not the 2 + 2 x 32 passes the first block takes uncancelled
    assert not (tmp_path / "out").exists()
    assert not list((tmp_path / "c").glob("*/artifacts"))
    assert not list((tmp_path / "c").glob("*/partial/blocks/*"))


def test_hf_generate_cancelled_mid_generation_raises_instead_of_returning_cut_texts(tiny):
    dataset, model = tiny
    should_cancel = cancel_after(2)  # before the batch, after its prompt's pass; then after the 1st token
    backend = open_backend("hf", model, None, beams=2, max_new_tokens=32, batch=4, should_cancel=should_cancel)
    with pytest.raises(Cancelled):
        backend.generate([dataset.titles[0], dataset.titles[1]])
    assert should_cancel.calls == 3


def test_a_run_cancelled_mid_block_resumes_to_the_never_cancelled_result(tiny, tmp_path, monkeypatch):
    dataset, model = tiny
    options = BigRecOptions(**{**OPTIONS, "max_new_tokens": 6, "beams": 2, "limit": 4, "block": 2})  # 6 blocks
    finished = []
    real_block = bigrec_module._run_block

    def counting_block(*args):
        empty = real_block(*args)
        finished.append(args[3])
        return empty

    monkeypatch.setattr(bigrec_module, "_run_block", counting_block)
    asked_since = []

    def cancel_in_the_second_block():
        # asked before the block, before its first batch, then after the batch's first generation step
        if finished:
            asked_since.append(1)
        return len(asked_since) >= 3

    with pytest.raises(Cancelled):
        bigrec_teacher(dataset, tmp_path / "out", model, options=options, cache=tmp_path / "c",
                       should_cancel=cancel_in_the_second_block)
    assert len(finished) == 1 and len(list((tmp_path / "c").glob("*/partial/blocks/*"))) == 1
    lines = []
    bigrec_teacher(dataset, tmp_path / "out", model, options=options, cache=tmp_path / "c", log=lines.append)
    assert any("resuming, 1 of" in line for line in lines)
    monkeypatch.setattr(bigrec_module, "_run_block", real_block)
    bigrec_teacher(dataset, tmp_path / "fresh", model, options=options, cache=tmp_path / "c2")
    assert all((tmp_path / "out" / n).read_bytes() == (tmp_path / "fresh" / n).read_bytes() for n in FILES)
