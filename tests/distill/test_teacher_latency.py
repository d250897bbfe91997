"""The titles and semantic teachers time single-history requests (batch 1, after one warm-up) into
latency.json, as BIGRec does, without changing any other artifact; latency_requests=0 writes none."""

import json

import pytest

from distill.errors import Cancelled, ConfigError
from distill.latency import percentiles_ms, single_request_latency
from distill.teacher import build_teacher
from distill.teacher.semantic import semantic_latency, semantic_teacher
from distill.teacher.titles import title_latency, title_teacher

from factories import WORDS, chain_dataset

KINDS = [("titles", {"k": 5, "dim": 16}), ("semantic", {"k": 5}), ("semantic", {"k": 5, "history": "text"})]
IDS = ["titles", "semantic-mean", "semantic-text"]


@pytest.fixture(scope="module")
def dataset():
    return chain_dataset(num_items=24, users=12, length=8,
                         titles=[f"The {w.title()} Story ({1980 + i})" for i, w in enumerate(WORDS)])


def latency_of(directory):
    return json.loads((directory / "latency.json").read_text())


def counting():
    def should_cancel():
        should_cancel.calls += 1
        return False
    should_cancel.calls = 0
    return should_cancel


@pytest.mark.parametrize("kind, options", KINDS, ids=IDS)
def test_latency_json_holds_sane_single_history_timings(kind, options, dataset, tmp_path):
    out = build_teacher(kind, dataset, tmp_path / "teacher", latency_requests=4, **options)
    latency = latency_of(out)
    assert latency["kind"] == kind and latency["batch_size"] == 1 and latency["requests"] == 4
    assert latency["split"] == "test" and latency["warmup"] == 1
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] and latency["mean_ms"] > 0 and latency["throughput"] > 0
    assert latency["device"].startswith("cpu")
    assert {"p50_ms", "p95_ms", "throughput", "device"} <= set(latency)  # what the service's latency stage reads


@pytest.mark.parametrize("kind, options", KINDS, ids=IDS)
def test_requests_are_capped_at_the_test_histories(kind, options, dataset, tmp_path):
    out = build_teacher(kind, dataset, tmp_path / "teacher", latency_requests=10_000, **options)
    assert latency_of(out)["requests"] == len(dataset.test)


def test_the_default_is_sixteen_requests(tmp_path):
    larger = chain_dataset(num_items=30, users=40)
    assert len(larger.test) > 16
    assert latency_of(build_teacher("titles", larger, tmp_path / "teacher", k=5, dim=16))["requests"] == 16


@pytest.mark.parametrize("kind, options", KINDS, ids=IDS)
def test_latency_requests_zero_writes_no_latency_json(kind, options, dataset, tmp_path):
    out = build_teacher(kind, dataset, tmp_path / "teacher", latency_requests=0, **options)
    assert (out / "teacher.json").is_file() and not (out / "latency.json").exists()


@pytest.mark.parametrize("kind, options", KINDS, ids=IDS)
def test_measuring_latency_changes_no_other_artifact(kind, options, dataset, tmp_path):
    timed = build_teacher(kind, dataset, tmp_path / "timed", latency_requests=8, **options)
    untimed = build_teacher(kind, dataset, tmp_path / "untimed", latency_requests=0, **options)
    names = sorted(p.name for p in untimed.iterdir())
    assert sorted(p.name for p in timed.iterdir()) == sorted(names + ["latency.json"])
    assert all((timed / name).read_bytes() == (untimed / name).read_bytes() for name in names)


@pytest.mark.parametrize("kind, options", KINDS, ids=IDS)
def test_a_cancel_during_the_measurement_leaves_no_artifacts(kind, options, dataset, tmp_path):
    hook = counting()
    build_teacher(kind, dataset, tmp_path / "untimed", should_cancel=hook, latency_requests=0, **options)
    computed = hook.calls  # checks before the measurement starts

    def should_cancel():
        should_cancel.calls += 1
        return should_cancel.calls > computed + 1  # the second check of the measurement
    should_cancel.calls = 0
    with pytest.raises(Cancelled):
        build_teacher(kind, dataset, tmp_path / "teacher", should_cancel=should_cancel, latency_requests=3, **options)
    assert should_cancel.calls == computed + 2
    assert not (tmp_path / "teacher").exists()


@pytest.mark.parametrize("requests", [-1, 10_001])
def test_latency_requests_is_bounded_like_bigrecs(requests, dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"latency_requests=.* is out of range: 0\.\.10000"):
        build_teacher("titles", dataset, tmp_path / "teacher", latency_requests=requests)
    with pytest.raises(ConfigError, match=r"out of range: 0\.\.10000"):
        title_latency(dataset, title_teacher(dataset, k=5, dim=16), requests)
    assert not (tmp_path / "teacher").exists()


def test_the_measurement_functions_return_none_for_zero_requests(dataset):
    assert title_latency(dataset, title_teacher(dataset, k=5, dim=16), 0) is None
    assert semantic_latency(dataset, semantic_teacher(dataset, k=5, splits=("train", "test")), 0) is None


def test_percentiles_are_those_of_the_timings():
    assert percentiles_ms([1.0, 2.0, 3.0, 4.0, 5.0]) == {"p50_ms": 3.0, "p95_ms": 4.8, "mean_ms": 3.0}


def test_single_request_latency_warms_up_on_the_first_request_and_times_each_once():
    seen = []
    result = single_request_latency(seen.append, 3, warmup=1)
    assert seen == [0, 0, 1, 2] and result["requests"] == 3 and result["batch_size"] == 1
    assert single_request_latency(seen.append, 0) is None
