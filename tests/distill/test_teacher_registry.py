"""The teacher registry: one spelling of a teacher spec (old one accepted), named errors, and
`build_teacher` writing artifacts a student reads (for bigrec: the cache entry itself)."""

import dataclasses
import json

import numpy as np
import pytest

from distill.errors import ConfigError
from distill.teacher import TEACHERS, TeacherArtifacts, TeacherKind, build_teacher, parse_teacher, title_teacher
from distill.teacher.tiny import build_tiny_llm

from factories import WORDS, chain_dataset


def test_the_registry_holds_three_kinds_with_their_options():
    assert list(TEACHERS) == ["semantic", "titles", "bigrec"]
    budget = {"budget", "budget_rule", "budget_seed"}
    assert TEACHERS["titles"].options == frozenset({"k", "dim", "latency_requests"} | budget)
    assert TEACHERS["semantic"].options == frozenset({"k", "model", "exclude_history", "history", "latency_requests"}
                                                     | budget)
    assert {"backend", "model", "adapter", "k", "beams", "block", "batch", "url", "served_model"} | budget \
        <= TEACHERS["bigrec"].options
    assert "shards" not in TEACHERS["bigrec"].options  # the service's option, stripped before the library
    assert all(isinstance(kind, TeacherKind) and kind.name == name for name, kind in TEACHERS.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        TEACHERS["titles"].name = "other"


@pytest.mark.parametrize("spec, parsed", [
    ({}, {"kind": "semantic"}),
    ({"kind": "titles", "k": 5}, {"kind": "titles", "k": 5}),
    ({"kind": "bigrec"}, {"kind": "bigrec", "backend": "hf"}),
    ({"kind": "bigrec", "backend": "vllm", "beams": 2}, {"kind": "bigrec", "backend": "vllm", "beams": 2}),
    # the old spelling: the backend named the kind
    ({"backend": "semantic", "model": "enc"}, {"kind": "semantic", "model": "enc"}),
    ({"backend": "titles", "dim": 32}, {"kind": "titles", "dim": 32}),
    ({"backend": "hf", "k": 5}, {"kind": "bigrec", "backend": "hf", "k": 5}),
    ({"backend": "vllm"}, {"kind": "bigrec", "backend": "vllm"}),
])
def test_parse_teacher_accepts_both_spellings(spec, parsed):
    assert parse_teacher(spec) == parsed
    assert parse_teacher(parsed) == parsed  # the new spelling is a fixed point


def test_parse_teacher_leaves_its_argument_alone():
    spec = {"backend": "hf", "k": 5}
    parse_teacher(spec)
    assert spec == {"backend": "hf", "k": 5}


@pytest.mark.parametrize("spec, message", [
    ({"kind": "gpt"}, "kind 'gpt' is not one of semantic, titles, bigrec"),
    ({"backend": "gpt"}, "backend 'gpt' is not one of semantic, titles, hf, vllm"),
    ({"kind": "bigrec", "backend": "tgi"}, "backend 'tgi' is not one of hf, vllm"),
    ({"backend": "semantic", "beams": 4},
     "unknown option(s) 'beams' for teacher kind 'semantic'; known: budget, budget_rule, budget_seed, exclude_history, "
     "history, k, latency_requests, model"),
    ({"kind": "titles", "model": "x", "dims": 3}, "unknown option(s) 'dims', 'model' for teacher kind 'titles'; "
                                                  "known: budget, budget_rule, budget_seed, dim, k"),
    ({"kind": "bigrec", "shards": 2}, "unknown option(s) 'shards' for teacher kind 'bigrec'; known: adapter, "),
])
def test_unknown_kinds_and_options_are_named_with_the_known_ones(spec, message):
    with pytest.raises(ConfigError) as caught:
        parse_teacher(spec)
    assert str(caught.value).startswith(message)


def test_a_teacher_spec_must_be_an_object():
    with pytest.raises(ConfigError, match="^teacher: expected an object of option names to values, got list$"):
        parse_teacher(["titles"])


def test_build_teacher_titles_writes_artifacts_a_student_loads(tmp_path):
    dataset = chain_dataset(num_items=30, users=40)
    out = build_teacher("titles", dataset, tmp_path / "teacher", k=5, dim=16)
    assert out == tmp_path / "teacher"
    artifacts = TeacherArtifacts.load(out, dataset)
    assert artifacts.k == 5 and artifacts.dim == 16 and artifacts.splits == ["train", "val", "test"]
    assert artifacts.meta["teacher"]["kind"] == "titles"
    direct = title_teacher(dataset, k=5, dim=16)  # the registry adds nothing to what the teacher computes
    for split in artifacts.splits:
        np.testing.assert_array_equal(artifacts.ids[split], direct.ids[split])
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"val", "test"} <= set(metrics) and set(metrics["test"]) >= {"hr@5", "ndcg@5"}


def test_build_teacher_refuses_before_computing(tmp_path):
    dataset = chain_dataset(num_items=30, users=40)
    with pytest.raises(ConfigError, match=r"^unknown option\(s\) 'beams' for teacher kind 'titles'"):
        build_teacher("titles", dataset, tmp_path / "t", beams=4)
    with pytest.raises(ConfigError, match="^teacher titles: an output directory is needed"):
        build_teacher("titles", dataset, None)
    assert not (tmp_path / "t").exists()


BIGREC = dict(k=5, block=16, batch=8, max_new_tokens=10, latency_requests=2, limit=4, max_empty=1.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A titled dataset and a tiny random Llama (as tests/distill/test_bigrec.py's world, no fine-tuning)."""
    root = tmp_path_factory.mktemp("registry-bigrec")
    dataset = chain_dataset(num_items=24, users=12, length=8,
                            titles=[f"The {w.title()} Story ({1980 + i})" for i, w in enumerate(WORDS)])
    build_tiny_llm(root / "tiny", dataset.titles)
    return dataset, root / "tiny"


def test_bigrec_without_out_returns_the_cache_entry_and_copies_nothing(tiny, tmp_path):
    dataset, model = tiny
    cache = tmp_path / "cache"
    lines = []
    path = build_teacher("bigrec", dataset, None, cache=cache, log=lines.append, model=str(model), **BIGREC)
    (entry,) = cache.iterdir()
    assert path == entry / "artifacts"
    assert (path / "teacher.json").is_file() and (path / "metrics.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # no second copy anywhere
    assert sorted(p.name for p in entry.iterdir()) == ["artifacts"]  # the checkpoint blocks are gone
    meta = TeacherArtifacts.load(path).meta["teacher"]
    assert meta["kind"] == "bigrec" and meta["backend"] == "hf" and meta["limit"] == 4

    again = build_teacher("bigrec", dataset, None, cache=cache, log=lines.append, model=str(model), **BIGREC)
    assert again == path and lines[-1].startswith(f"teacher bigrec: reused the cached result {entry.name}")

    # With an output directory (the command line's --out) the entry is copied there, byte for byte.
    out = build_teacher("bigrec", dataset, tmp_path / "out", cache=cache, model=str(model), **BIGREC)
    assert out == tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in path.iterdir())
    assert all((out / p.name).read_bytes() == p.read_bytes() for p in path.iterdir())
