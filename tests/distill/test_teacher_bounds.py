"""Teacher options are bounded and typed at creation (`parse_teacher`), before anything is computed:
each refusal names the option and what it may be."""

import dataclasses

import pytest

from distill.errors import ConfigError
from distill.teacher import TEACHERS, build_teacher, parse_teacher
from distill.teacher.bigrec import BigRecOptions
from distill.teacher.registry import FLAGS, TEACHER_BOUNDS, TEACHER_CHOICES, TEACHER_TEXTS

from factories import chain_dataset


@pytest.mark.parametrize("kind, name, value, allowed", [
    ("titles", "k", 0, "1..1000"),
    ("semantic", "k", 1001, "1..1000"),
    ("titles", "dim", 7, "8..4096"),
    ("titles", "dim", 10**6, "8..4096"),
    ("bigrec", "k", 5000, "1..1000"),
    ("bigrec", "beams", 1_000_000, "1..64"),
    ("bigrec", "beams", 0, "1..64"),
    ("bigrec", "batch", 1025, "1..1024"),
    ("bigrec", "block", 100_001, "1..100000"),
    ("bigrec", "max_new_tokens", 513, "1..512"),
    ("bigrec", "limit", 0, "1..10000000"),
    ("bigrec", "limit", 10**7 + 1, "1..10000000"),
    ("bigrec", "eval_sample", 0, "1..10000000"),
    ("bigrec", "latency_requests", -1, "0..10000"),
    ("bigrec", "latency_requests", 10_001, "0..10000"),
    ("bigrec", "tensor_parallel", 65, "1..64"),
    ("bigrec", "gpu_memory", 1.0, "0.05..0.99"),
    ("bigrec", "gpu_memory", 0.01, "0.05..0.99"),
    ("bigrec", "max_empty", 1.5, "0.0..1.0"),
    ("bigrec", "max_empty", -0.1, "0.0..1.0"),
])
def test_an_out_of_range_option_names_itself_and_its_range(kind, name, value, allowed):
    with pytest.raises(ConfigError) as caught:
        parse_teacher({"kind": kind, name: value})
    assert str(caught.value) == f"teacher option {name}={value!r} is out of range: {allowed}"


@pytest.mark.parametrize("name, value, got", [
    ("beams", "4", "str"), ("beams", 4.0, "float"), ("beams", True, "bool"), ("k", None, "NoneType"),
    ("limit", [4], "list"),
])
def test_an_integer_option_takes_only_integers(name, value, got):
    with pytest.raises(ConfigError) as caught:
        parse_teacher({"kind": "bigrec", name: value})
    assert str(caught.value) == f"teacher option {name} must be an integer (a whole number), got {got}"


def test_a_float_option_takes_a_number_not_a_string():
    with pytest.raises(ConfigError, match="^teacher option gpu_memory must be a number, got str$"):
        parse_teacher({"kind": "bigrec", "backend": "vllm", "gpu_memory": "0.5"})


@pytest.mark.parametrize("kind, name, value, message", [
    ("semantic", "model", 5, "teacher option model must be a string (a model name), got int"),
    ("bigrec", "model", {"a": 1}, "teacher option model must be a string (a model name), got dict"),
    ("bigrec", "adapter", ["x"], "teacher option adapter must be a string (an adapter name), got list"),
    ("bigrec", "template", 3, "teacher option template must be a string (a prompt template), got int"),
    ("bigrec", "model", "", "teacher option model must be a model name of 1..4096 characters, got 0"),
])
def test_a_name_option_must_be_a_string(kind, name, value, message):
    with pytest.raises(ConfigError) as caught:
        parse_teacher({"kind": kind, name: value})
    assert str(caught.value) == message


@pytest.mark.parametrize("kind, name, value, message", [
    ("bigrec", "dtype", "fp8", "teacher option dtype='fp8' is not one of auto, fp32, bf16, fp16"),
    ("bigrec", "style", "poems", "teacher option style='poems' is not one of neutral, movies, video games"),
    ("semantic", "history", 1, "teacher option history=1 is not one of mean, text"),
    ("bigrec", "device", "tpu", "teacher option device='tpu' is not one of auto, cpu, cuda, cuda:N"),
    ("semantic", "exclude_history", "yes", "teacher option exclude_history must be true or false, got str"),
])
def test_a_choice_option_must_be_one_of_its_choices(kind, name, value, message):
    with pytest.raises(ConfigError) as caught:
        parse_teacher({"kind": kind, name: value})
    assert str(caught.value) == message


def test_a_long_bad_value_is_quoted_short():
    with pytest.raises(ConfigError) as caught:
        parse_teacher({"kind": "bigrec", "dtype": "x" * 10_000})
    assert len(str(caught.value)) < 150


def test_a_kind_that_is_not_a_string_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"^kind \['titles'\] is not one of semantic, titles, bigrec$"):
        parse_teacher({"kind": ["titles"]})


@pytest.mark.parametrize("spec", [
    {"kind": "bigrec", **{f.name: f.default for f in dataclasses.fields(BigRecOptions)}, "model": None,
     "adapter": None},
    {"kind": "bigrec", "backend": "vllm", "device": "cuda:1", "dtype": "bf16", "style": "movies", "max_empty": 1,
     "limit": 4},
    {"kind": "semantic", "k": 20, "model": "all-MiniLM-L6-v2", "exclude_history": False, "history": "mean"},
    {"kind": "titles", "k": 20, "dim": 256},
])
def test_defaults_and_ordinary_values_are_accepted(spec):
    assert parse_teacher(spec) == spec


def test_every_option_of_every_kind_has_a_rule():
    ruled = (set(TEACHER_BOUNDS) | set(TEACHER_CHOICES) | set(TEACHER_TEXTS) | set(FLAGS)
             | {"device", "budget", "url", "embed_url", "api_key_env"})
    assert set().union(*(kind.options for kind in TEACHERS.values())) == ruled


def test_bigrec_options_built_directly_are_bounded_the_same_way():
    """The command line's --shard path builds BigRecOptions without parse_teacher."""
    with pytest.raises(ConfigError, match=r"^teacher option beams=100 is out of range: 1\.\.64$"):
        BigRecOptions(beams=100)


def test_build_teacher_refuses_an_out_of_range_option_before_computing(tmp_path):
    with pytest.raises(ConfigError, match=r"^teacher option dim=5 is out of range"):
        build_teacher("titles", chain_dataset(num_items=30, users=40), tmp_path / "t", dim=5)
    assert not (tmp_path / "t").exists()
