"""The teacher registry (docs/method.md §2): every teacher kind, its options and how it is built.

A teacher spec is `{"kind": "semantic" | "titles" | "bigrec", **options}`; BIGRec's generation
`backend` (hf | vllm) is one of its options, separate from the kind. The old spelling
`{"backend": "semantic" | "titles" | "hf" | "vllm", ...}` is still accepted by `parse_teacher`.
`build_teacher` computes a teacher and returns the directory holding its artifacts (teacher.json,
ranks, item embeddings, metrics.json), the one thing the students read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from distill.errors import ConfigError
from distill.latency import LATENCY_REQUESTS
from distill.teacher.budget import BUDGET_RULES, DEFAULT_RULE, check_budget, with_budget
from distill.teacher.prompts import PRESETS
from distill.teacher.semantic import HISTORY_MODES

DEFAULT_KIND = "semantic"
BIGREC_BACKENDS = ("hf", "vllm", "openai")  # BIGRec's generation backends (distill.teacher.backends)
DEFAULT_BACKEND = "hf"
DTYPES = ("auto", "fp32", "bf16", "fp16")  # BIGRec's model dtypes (distill.teacher.backends.torch_dtype)
# The old spelling {"backend": ...} named the teacher itself: semantic, titles, or a BIGRec backend.
LEGACY_BACKENDS = ("semantic", "titles", *BIGREC_BACKENDS)

# Inclusive bounds of every teacher option with a resource cost, checked by `parse_teacher` before
# anything is computed (docs/method.md §2). Integer bounds take integers only, float bounds any number.
TEACHER_BOUNDS: dict[str, tuple[int, int] | tuple[float, float]] = {
    "k": (1, 1000),                   # list length: ranks [instances, k] per split
    "dim": (8, 4096),                 # titles: SVD rank, item table [num_items, dim]
    "beams": (1, 64),                 # beam width: generation time and memory grow with it
    "batch": (1, 1024),               # prompts per generate call (4x texts per embedding call)
    "block": (1, 100_000),            # instances generated and checkpointed together
    "max_new_tokens": (1, 512),       # generation steps per prompt
    "limit": (1, 10**7),              # instances of each split (a smoke run)
    "eval_sample": (1, 10**7),        # bigrec: val and test instances ranked (a recorded seeded sample)
    "latency_requests": (0, 10_000),  # timed single-history requests (0: no latency.json)
    "tensor_parallel": (1, 64),       # GPUs per vLLM engine
    "gpu_memory": (0.05, 0.99),       # vLLM's share of the GPU memory
    "max_empty": (0.0, 1.0),          # share of empty generations accepted
    "budget_seed": (0, 2**31 - 1),    # the budget rule's random order (and its quick student's seed)
    "concurrency": (1, 64),           # openai: requests in flight
    "retries": (0, 10),               # openai: attempts after the first, with backoff
    "timeout": (1.0, 3600.0),         # openai: seconds per request
    "request_budget": (1, 10**7),     # openai: requests at most per teacher run
}
# The options whose value is one of a known set.
TEACHER_CHOICES: dict[str, tuple[str, ...]] = {
    "backend": BIGREC_BACKENDS, "dtype": DTYPES, "history": HISTORY_MODES, "style": tuple(PRESETS),
    "budget_rule": BUDGET_RULES, "grounding": ("local", "server"),
}
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,2})?")  # BigRecOptions.device: auto | cpu | cuda | cuda:N
# Options that name something (a model or adapter directory, a template text): strings of at most
# this many characters. Names are resolved by whoever runs the teacher (the service under its own root).
TEACHER_TEXTS = {"model": ("a model name", 4096), "adapter": ("an adapter name", 4096),
                 "template": ("a prompt template", 20_000), "served_model": ("the served model's name", 512),
                 "embed_model": ("the served pooling model's name", 512)}
# openai: the server's base URL (http or https, up to /v1 excluded) and the API key's variable name.
URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/]*)?")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
SERVER_NAMES = ("url", "served_model", "api_key_env", "embed_url", "embed_model")   # only with backend openai
OPENAI_OPTIONS = frozenset({"url", "served_model", "api_key_env", "grounding", "embed_url", "embed_model",
                            "concurrency", "retries", "timeout", "request_budget"})
FLAGS = ("exclude_history",)
NULLABLE = ("model", "adapter", "template", "style", "limit", "eval_sample", "budget", "url", "served_model", "api_key_env",
            "embed_url", "embed_model", "request_budget")  # None means: the default / no limit
# Every kind takes a budget (docs/method.md §2.6): rank only part of the training instances.
BUDGET_OPTIONS = frozenset({"budget", "budget_rule", "budget_seed"})


@dataclass(frozen=True)
class TeacherKind:
    name: str
    options: frozenset[str]   # the option names `build_teacher(name, ...)` accepts
    build: Callable[..., Path]  # build(dataset, out, *, cache, log, should_cancel, **options) -> artifacts dir
    description: str = ""     # one line, for progress messages


def _build_titles(dataset, out, *, cache=None, log=None, should_cancel=None, k: int = 20, dim: int = 256,
                  latency_requests: int = LATENCY_REQUESTS, budget=None, budget_rule: str = DEFAULT_RULE,
                  budget_seed: int = 0) -> Path:
    from distill.teacher.titles import title_latency, title_teacher
    artifacts = title_teacher(dataset, k=k, dim=dim, should_cancel=should_cancel)
    with_budget(artifacts, dataset, budget, budget_rule, budget_seed, should_cancel)
    return _save(artifacts, dataset, out, title_latency(dataset, artifacts, latency_requests, should_cancel))


def _build_semantic(dataset, out, *, cache=None, log=None, should_cancel=None, model=None, k: int = 20,
                    exclude_history: bool = False, history: str = "mean",
                    latency_requests: int = LATENCY_REQUESTS, budget=None, budget_rule: str = DEFAULT_RULE,
                    budget_seed: int = 0) -> Path:
    from distill.teacher.semantic import semantic_latency, semantic_teacher
    artifacts = semantic_teacher(dataset, model, k=k, exclude_history=exclude_history, history=history,
                                 should_cancel=should_cancel)
    with_budget(artifacts, dataset, budget, budget_rule, budget_seed, should_cancel)
    return _save(artifacts, dataset, out, semantic_latency(dataset, artifacts, latency_requests, should_cancel))


def legacy_kind(backend: str) -> str:
    """The teacher kind an old-spelling `backend` names (hf, vllm: bigrec)."""
    return "bigrec" if backend in BIGREC_BACKENDS else backend


def bigrec_arguments(options: dict):
    """(model, adapter, BigRecOptions) of bigrec options (a spec without `kind`), as `bigrec_teacher`
    takes them; one shard of a teacher (`bigrec_teacher(..., shard=)`) is built from them too."""
    from distill.teacher.bigrec import BigRecOptions
    options = dict(options)
    model, adapter = options.pop("model", None), options.pop("adapter", None)
    return model, adapter, BigRecOptions(**options)


def _build_bigrec(dataset, out, *, cache=None, log=None, should_cancel=None, **options) -> Path:
    """`out=None` returns the cache entry's complete artifacts directory, not copied anywhere."""
    from distill.teacher.bigrec import bigrec_teacher
    model, adapter, bigrec_options = bigrec_arguments(options)
    result = bigrec_teacher(dataset, out, model, adapter, bigrec_options, cache=cache, log=log,
                            should_cancel=should_cancel)
    return Path(result["path"])


def _save(artifacts, dataset, out, latency: dict | None = None) -> Path:
    """Write `artifacts` and their metrics.json (and `latency`, when measured, as latency.json) to `out`."""
    from distill.evaluate import teacher_report
    if out is None:
        raise ConfigError(f"teacher {artifacts.meta['teacher']['kind']}: an output directory is needed "
                          "(only bigrec keeps its result in a cache)")
    artifacts.save(out, metrics=teacher_report(artifacts, dataset),
                   extra=None if latency is None else {"latency.json": latency})
    return Path(out)


TEACHERS: dict[str, TeacherKind] = {
    "semantic": TeacherKind("semantic", frozenset({"k", "model", "exclude_history", "history", "latency_requests"})
                            | BUDGET_OPTIONS, _build_semantic, "sentence encoder over the titles"),
    "titles": TeacherKind("titles", frozenset({"k", "dim", "latency_requests"}) | BUDGET_OPTIONS, _build_titles,
                          "title similarity (TF-IDF)"),
    "bigrec": TeacherKind("bigrec", frozenset({
        "backend", "model", "adapter", "k", "beams", "max_new_tokens", "batch", "block", "style", "template",
        "exclude_history", "limit", "device", "dtype", "tensor_parallel", "gpu_memory", "latency_requests",
        "max_empty", "eval_sample"}) | BUDGET_OPTIONS | OPENAI_OPTIONS, _build_bigrec, "BIGRec generation + grounding"),
}


def parse_teacher(spec: dict) -> dict:
    """A teacher spec in the one spelling `{"kind": ..., **options}` (bigrec always with `backend`).

    Accepts the old spelling `{"backend": "semantic" | "titles" | "hf" | "vllm", ...}`. Raises
    ConfigError naming an unknown kind, backend or option, with the known ones, or an option whose
    value has the wrong type, is not one of its choices or is out of its TEACHER_BOUNDS."""
    if not isinstance(spec, dict):
        raise ConfigError(f"teacher: expected an object of option names to values, got {type(spec).__name__}")
    options = dict(spec)
    if "kind" in options:
        kind = options.pop("kind")
        if not isinstance(kind, str) or kind not in TEACHERS:
            raise ConfigError(f"kind {_shown(kind)} is not one of {', '.join(TEACHERS)}")
    elif "backend" in options:  # the old spelling: the backend named the kind
        backend = options["backend"]
        if not isinstance(backend, str) or backend not in LEGACY_BACKENDS:
            raise ConfigError(f"backend {_shown(backend)} is not one of {', '.join(LEGACY_BACKENDS)}")
        kind = legacy_kind(backend)
        if kind != "bigrec":
            options.pop("backend")
    else:
        kind = DEFAULT_KIND
    known = TEACHERS[kind].options
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(map(repr, unknown))} for teacher kind {kind!r}; "
                          f"known: {', '.join(sorted(known))}")
    if kind == "bigrec":
        options.setdefault("backend", DEFAULT_BACKEND)
        if not isinstance(options["backend"], str) or options["backend"] not in BIGREC_BACKENDS:
            raise ConfigError(f"backend {_shown(options['backend'])} is not one of {', '.join(BIGREC_BACKENDS)}")
        given = sorted(name for name in SERVER_NAMES if options.get(name) is not None)
        if options["backend"] == "openai" and options.get("url") is None:
            raise ConfigError("backend openai needs url: the OpenAI-compatible server's base URL, e.g. "
                              "http://llm.internal:8000")
        if options["backend"] != "openai" and given:
            raise ConfigError(f"option(s) {', '.join(given)} are for backend openai, not {options['backend']}")
    for name, value in options.items():
        check_teacher_option(name, value)
    return {"kind": kind, **options}


def check_teacher_option(name: str, value) -> None:
    """Raise ConfigError unless `value` has the type of option `name` and lies in its bounds or choices."""
    if value is None and name in NULLABLE:
        return
    got = type(value).__name__
    if name == "budget":
        check_budget(value)
    elif name in TEACHER_BOUNDS:
        low, high = TEACHER_BOUNDS[name]
        if isinstance(low, int):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"teacher option {name} must be an integer (a whole number), got {got}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"teacher option {name} must be a number, got {got}")
        if not low <= value <= high:
            raise ConfigError(f"teacher option {name}={value!r} is out of range: {low}..{high}")
    elif name in TEACHER_TEXTS:
        what, longest = TEACHER_TEXTS[name]
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(f"teacher option {name} must be a string ({what}), got {got}")
        if not 1 <= len(str(value)) <= longest:
            raise ConfigError(f"teacher option {name} must be {what} of 1..{longest} characters, "
                              f"got {len(str(value))}")
    elif name in FLAGS:
        if not isinstance(value, bool):
            raise ConfigError(f"teacher option {name} must be true or false, got {got}")
    elif name in TEACHER_CHOICES:
        if not isinstance(value, str) or value not in TEACHER_CHOICES[name]:
            raise ConfigError(f"teacher option {name}={_shown(value)} is not one of "
                              f"{', '.join(TEACHER_CHOICES[name])}")
    elif name in ("url", "embed_url"):
        if not isinstance(value, str) or len(value) > 2048 or not URL.fullmatch(value):
            raise ConfigError(f"teacher option {name}={_shown(value)} is not an http(s) URL such as "
                              "http://llm.internal:8000")
    elif name == "api_key_env":
        if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
            raise ConfigError(f"teacher option api_key_env={_shown(value)} must name an environment variable "
                              "(capital letters, digits, _), e.g. LLM_API_KEY; the key itself never goes in a config")
    elif name == "device":
        if not isinstance(value, str) or not DEVICE.fullmatch(value):
            raise ConfigError(f"teacher option device={_shown(value)} is not one of auto, cpu, cuda, cuda:N")


def _shown(value) -> str:
    """A value as an error message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_teacher(kind: str, dataset, out: str | Path | None, *, cache: str | Path | None = None,
                  log: Callable[[str], None] | None = None, should_cancel: Callable[[], bool] | None = None,
                  **options) -> Path:
    """Compute the teacher `kind` on every split, write its artifacts and metrics.json to `out`,
    return the directory holding them. For bigrec, `cache` is its block cache (default
    $DLLM2REC_HOME/teachers) and `out=None` returns the cache entry's artifacts directory.
    `should_cancel` is asked at least once per batch or block of rows; when it says so, the teacher
    raises distill.errors.Cancelled and leaves no complete artifacts behind."""
    spec = parse_teacher({"kind": kind, **options})
    spec.pop("kind")
    return TEACHERS[kind].build(dataset, out, cache=cache, log=log, should_cancel=should_cancel, **spec)
