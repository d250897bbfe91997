"""The teacher registry (docs/method.md §2): every teacher kind, its options and how it is built.

A teacher spec is `{"kind": "semantic" | "titles" | "bigrec", **options}`; BIGRec's generation
`backend` (hf | vllm) is one of its options, separate from the kind. The old spelling
`{"backend": "semantic" | "titles" | "hf" | "vllm", ...}` is still accepted by `parse_teacher`.
`build_teacher` computes a teacher and returns the directory holding its artifacts (teacher.json,
ranks, item embeddings, metrics.json), the one thing the students read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from distill.errors import ConfigError

DEFAULT_KIND = "semantic"
BIGREC_BACKENDS = ("hf", "vllm")  # distill.teacher.backends.BACKENDS, without importing torch here
DEFAULT_BACKEND = "hf"
# The old spelling {"backend": ...} named the teacher itself: semantic, titles, or a BIGRec backend.
LEGACY_BACKENDS = ("semantic", "titles", *BIGREC_BACKENDS)


@dataclass(frozen=True)
class TeacherKind:
    name: str
    options: frozenset[str]   # the option names `build_teacher(name, ...)` accepts
    build: Callable[..., Path]  # build(dataset, out, *, cache, log, **options) -> artifacts directory
    description: str = ""     # one line, for progress messages


def _build_titles(dataset, out, *, cache=None, log=None, k: int = 20, dim: int = 256) -> Path:
    from distill.teacher.titles import title_teacher
    return _save(title_teacher(dataset, k=k, dim=dim), dataset, out)


def _build_semantic(dataset, out, *, cache=None, log=None, model=None, k: int = 20, exclude_history: bool = False,
                    history: str = "mean") -> Path:
    from distill.teacher.semantic import semantic_teacher
    return _save(semantic_teacher(dataset, model, k=k, exclude_history=bool(exclude_history), history=history),
                 dataset, out)


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


def _build_bigrec(dataset, out, *, cache=None, log=None, **options) -> Path:
    """`out=None` returns the cache entry's complete artifacts directory, not copied anywhere."""
    from distill.teacher.bigrec import bigrec_teacher
    model, adapter, bigrec_options = bigrec_arguments(options)
    result = bigrec_teacher(dataset, out, model, adapter, bigrec_options, cache=cache, log=log)
    return Path(result["path"])


def _save(artifacts, dataset, out) -> Path:
    from distill.evaluate import teacher_report
    if out is None:
        raise ConfigError(f"teacher {artifacts.meta['teacher']['kind']}: an output directory is needed "
                          "(only bigrec keeps its result in a cache)")
    artifacts.save(out, metrics=teacher_report(artifacts, dataset))
    return Path(out)


TEACHERS: dict[str, TeacherKind] = {
    "semantic": TeacherKind("semantic", frozenset({"k", "model", "exclude_history", "history"}), _build_semantic,
                            "sentence encoder over the titles"),
    "titles": TeacherKind("titles", frozenset({"k", "dim"}), _build_titles, "title similarity (TF-IDF)"),
    "bigrec": TeacherKind("bigrec", frozenset({
        "backend", "model", "adapter", "k", "beams", "max_new_tokens", "batch", "block", "style", "template",
        "exclude_history", "limit", "device", "dtype", "tensor_parallel", "gpu_memory", "latency_requests",
        "max_empty"}), _build_bigrec, "BIGRec generation + grounding"),
}


def parse_teacher(spec: dict) -> dict:
    """A teacher spec in the one spelling `{"kind": ..., **options}` (bigrec always with `backend`).

    Accepts the old spelling `{"backend": "semantic" | "titles" | "hf" | "vllm", ...}`. Raises
    ConfigError naming an unknown kind, backend or option, with the known ones."""
    if not isinstance(spec, dict):
        raise ConfigError(f"teacher: expected an object of option names to values, got {type(spec).__name__}")
    options = dict(spec)
    if "kind" in options:
        kind = options.pop("kind")
        if kind not in TEACHERS:
            raise ConfigError(f"kind {kind!r} is not one of {', '.join(TEACHERS)}")
    elif "backend" in options:  # the old spelling: the backend named the kind
        backend = options["backend"]
        if backend not in LEGACY_BACKENDS:
            raise ConfigError(f"backend {backend!r} is not one of {', '.join(LEGACY_BACKENDS)}")
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
        if options["backend"] not in BIGREC_BACKENDS:
            raise ConfigError(f"backend {options['backend']!r} is not one of {', '.join(BIGREC_BACKENDS)}")
    return {"kind": kind, **options}


def build_teacher(kind: str, dataset, out: str | Path | None, *, cache: str | Path | None = None,
                  log: Callable[[str], None] | None = None, **options) -> Path:
    """Compute the teacher `kind` on every split, write its artifacts and metrics.json to `out`,
    return the directory holding them. For bigrec, `cache` is its block cache (default
    $DLLM2REC_HOME/teachers) and `out=None` returns the cache entry's artifacts directory."""
    spec = parse_teacher({"kind": kind, **options})
    spec.pop("kind")
    return TEACHERS[kind].build(dataset, out, cache=cache, log=log, **spec)
