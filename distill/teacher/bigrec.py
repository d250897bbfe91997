"""`teacher bigrec`: BIGRec's teacher end to end (docs/method.md §2): prompt, generate, ground, write.

Work is cut into blocks of `block` consecutive instances of a split. A block is the unit of
everything that must not depend on how a run is split up:

- compute: its prompts are generated and embedded together, so its numbers are the same whether
  the block runs in one job or in shard 3 of 8 (batch composition can move float results);
- checkpoint: a finished block is written atomically under the cache entry's `partial/`, so an
  interrupted run resumes where it stopped, and no half-written file is ever read;
- sharding: `--shard i/n` takes the i-th of n contiguous runs of blocks; `merge` joins the
  shards' blocks and writes the same bytes as an unsharded run.

The cache key hashes everything the outputs depend on (prepared dataset, model and adapter
fingerprints, prompt, K, decoding, grounding, backend, dtype, limit, block and batch). A complete
entry `<cache>/<key>/artifacts` is copied to `--out` instead of being computed again (with
`out=None` its path is returned and nothing is copied: the service's one teacher cache); it appears
only complete (atomic_directory). Latency (`latency.json`) is measured, not computed, so it is the
one file that differs between two runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from distill.data.dataset import SPLITS, PreparedDataset
from distill.errors import ConfigError, TeacherError, raise_if_cancelled
from distill.evaluate import teacher_metrics, teacher_report
from distill.io import atomic_directory, read_json, write_json
from distill.teacher import llm
from distill.teacher.artifacts import TeacherArtifacts
from distill.teacher.backends import open_backend
from distill.teacher.grounding import nearest_items
from distill.teacher.prompts import clean_generation, instance_prompts, prompt_style, token_budget
from distill.teacher.registry import OPENAI_OPTIONS, check_teacher_option
from distill.teacher.titles import require_list_length

KEY_VERSION = 1
EMPTY_ANSWER = '""'  # what an empty generation is grounded as: the empty quoted title
MIN_CHECKED = 32     # instances generated before the empty-answer share is judged
SHARD_FILE = "shard.json"


@dataclass
class BigRecOptions:
    backend: str = "hf"
    k: int = 20
    beams: int = 4
    max_new_tokens: int = 32
    batch: int = 16
    block: int = 256
    style: str | None = None          # default: the adapter's style, else "neutral"
    template: str | None = None
    exclude_history: bool = False
    limit: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    tensor_parallel: int = 1
    gpu_memory: float = 0.9
    latency_requests: int = 16
    max_empty: float = 0.5
    budget: int | float | None = None  # rank only part of the training instances (distill.teacher.budget)
    budget_rule: str = "random"
    budget_seed: int = 0
    eval_sample: int | None = None     # rank a seeded sample of this many val and test instances (None: all)
    # backend openai (distill.teacher.openai_backend): the server and how to talk to it
    url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None
    grounding: str = "local"
    embed_url: str | None = None
    embed_model: str | None = None
    concurrency: int = 4
    retries: int = 3
    timeout: float = 120.0
    request_budget: int | None = None

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():  # the registry's types, choices and TEACHER_BOUNDS
            check_teacher_option(name, value)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`"2/4"` -> (2, 4): shard 2 of 4, counted from 1."""
    if text is None:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: write it as i/n, e.g. 2/4 (shards are counted from 1)") from None
    if not 1 <= index <= count:
        raise ConfigError(f"--shard {text!r}: i must be in 1..n (shards are counted from 1)")
    return index, count


@dataclass
class _Plan:
    """Everything a run needs to know before it loads a model."""
    dataset: PreparedDataset
    options: BigRecOptions
    model: Path
    adapter: Path | None
    style: object
    teacher: dict
    key: str
    budget: tuple[np.ndarray, int, dict] | None = None   # (order, count, record) of a budget
    eval_rows: dict | None = None      # split -> the sampled val/test rows (an eval_sample), or None: all

    def blocks(self) -> list[tuple[str, int, int]]:
        """(split, start, stop): positions start..stop-1 in `row_index(split)`."""
        blocks = []
        for split in SPLITS:
            rows = len(self.row_index(split))
            blocks += [(split, start, min(start + self.options.block, rows))
                       for start in range(0, rows, self.options.block)]
        return blocks

    @functools.cached_property
    def train_rows(self) -> np.ndarray:
        """With a budget, the training rows it ranks, ascending (sorted once, read by every block)."""
        order, count, _ = self.budget
        return np.sort(order[:count])

    def row_index(self, split: str) -> np.ndarray:
        """The rows of `split` the teacher ranks, ascending: all (or the first `limit`), or for train
        with a budget the budget's rows, for val/test with an eval_sample the sample's rows."""
        if split == "train" and self.budget is not None:
            return self.train_rows
        if (self.eval_rows or {}).get(split) is not None:
            return self.eval_rows[split]
        n = len(self.dataset.split(split))
        return np.arange(n if self.options.limit is None else min(n, self.options.limit))


def plan(dataset: PreparedDataset, model: str | Path | None, adapter: str | Path | None,
         options: BigRecOptions) -> _Plan:
    require_list_length(dataset, options.k)
    untitled = [i for i, title in enumerate(dataset.titles) if not (title or "").strip()]
    if untitled:
        raise TeacherError(f"{dataset.path or 'the prepared dataset'}: {len(untitled):,} of {dataset.num_items:,} items "
                           f"have no title (the first is item {dataset.item_ids[untitled[0]]!r}); BIGRec writes and "
                           "grounds titles: prepare the data again with an items file that titles every item")
    adapter_path = None
    record = {}
    if adapter is not None:
        adapter_path = Path(adapter)
        if not adapter_path.is_dir():
            raise TeacherError(f"{adapter_path}: adapter directory does not exist; pass the --out directory of "
                               "`teacher finetune`")
        record = llm.adapter_info(adapter_path)
        if model is None and record.get("base_model"):
            model = record["base_model"]
    path = llm.resolve_model(model)
    llm.check_causal_lm(path)
    model_print = llm.fingerprint(path)
    if record.get("base_fingerprint") and record["base_fingerprint"] != model_print:
        raise TeacherError(f"{adapter_path}: this adapter was trained on {record.get('base_model')}, which is not "
                           f"the model at {path} (their files differ); pass the base model it was trained on")
    if record.get("dataset_hash") and record["dataset_hash"] != dataset.content_hash:
        print(f"note: {adapter_path} was fine-tuned on another prepared dataset; titles it learned may not match")
    style_name = options.style or record.get("options", {}).get("style") or "neutral"
    template = options.template if options.template is not None else record.get("options", {}).get("template")
    style = prompt_style(style_name, template)
    tokenizer = llm.load_tokenizer(path)
    teacher = {
        "kind": "bigrec",
        "description": f"BIGRec: {path.name}{' + LoRA ' + adapter_path.name if adapter_path else ''} generates the "
                       "next title (beam search), grounded by base-model last-token L2 distance",
        "model": path.name,
        "model_fingerprint": model_print,
        "adapter": None if adapter_path is None else adapter_path.name,
        "adapter_fingerprint": None if adapter_path is None else llm.fingerprint(adapter_path),
        "prompt": {"style": style_name, **asdict(style)},
        "backend": options.backend,
        "dtype": options.dtype,
        "beams": options.beams,
        "max_new_tokens": options.max_new_tokens,
        "grounding": {"embedding": "base model, last layer, last token", "distance": "L2",
                      "empty_answer": EMPTY_ANSWER},
        "exclude_history": options.exclude_history,
        "limit": options.limit,
        "block": options.block,
        "batch": options.batch,
        "pad_token_fixed": bool(tokenizer.pad_fixed),
    }
    if options.backend == "openai":   # what the outputs depend on; not the key, retries or concurrency
        teacher["server"] = {"url": options.url, "served_model": options.served_model or path.name,
                             "grounding": options.grounding,
                             "embed_url": options.embed_url if options.grounding == "server" else None,
                             "embed_model": options.embed_model if options.grounding == "server" else None}
    budget = None
    if options.budget is not None:
        if options.limit is not None:
            raise ConfigError("bigrec: give budget or limit, not both (limit is the smoke-test cut of every split; "
                              "budget ranks part of the training instances for distillation)")
        from distill.teacher.budget import select
        budget = select(dataset, options.budget, options.budget_rule, options.budget_seed)
        teacher["budget"] = {key: budget[2][key] for key in ("budget", "rule", "seed")}
    if options.eval_sample is not None:
        if options.limit is not None:
            raise ConfigError("bigrec: give eval_sample or limit, not both (limit is the smoke-test cut of every "
                              "split; eval_sample ranks a recorded sample of val and test)")
        teacher["eval_sample"] = {"size": options.eval_sample, "seed": options.budget_seed}
    key_source = json.dumps({"version": KEY_VERSION, "dataset": dataset.content_hash, "k": options.k,
                             "teacher": teacher}, sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:24]
    return _Plan(dataset, options, path, adapter_path, style, teacher, key, budget, _sampled_rows(dataset, teacher))


def _sampled_rows(dataset: PreparedDataset, teacher: dict) -> dict:
    """split -> the val/test rows a recorded eval_sample ranks (None: every row)."""
    from distill.teacher.budget import eval_rows
    sample = teacher.get("eval_sample") or {}
    return {split: eval_rows(len(dataset.split(split)), sample.get("size"), sample.get("seed", 0))
            for split in ("val", "test")}


def default_cache() -> Path:
    return llm.home() / "teachers"


def bigrec_teacher(dataset: PreparedDataset, out: str | Path | None, model: str | Path | None = None,
                   adapter: str | Path | None = None, options: BigRecOptions | None = None,
                   shard: tuple[int, int] | None = None, cache: str | Path | None = None,
                   log: Callable[[str], None] | None = None,
                   should_cancel: Callable[[], bool] | None = None) -> dict:
    """Run the teacher (or one shard of it) and write `out`. Returns {"key", "cached", "path", ...}:
    `path` is `out`, or with `out=None` the cache entry's complete artifacts directory (not copied).

    `should_cancel` is asked before the model loads, before every block, every generation or
    embedding batch and (hf) every generation step; when it says so, Cancelled is raised. The blocks
    finished so far stay checkpointed (a later run resumes from them); the cancelled one is not."""
    options = options or BigRecOptions()
    log = log or (lambda message: None)
    if out is None and shard is not None:
        raise ConfigError("bigrec: a shard is written to its own directory; pass out for --shard")
    run = plan(dataset, model, adapter, options)
    entry = Path(cache) if cache is not None else default_cache()
    entry = entry / run.key
    if shard is None and (entry / "artifacts" / "teacher.json").is_file():
        if out is not None:
            _copy_dir(entry / "artifacts", out)
        log(f"teacher bigrec: reused the cached result {run.key} ({entry / 'artifacts'})")
        return {"key": run.key, "cached": True, "path": str(out if out is not None else entry / "artifacts")}

    blocks = run.blocks()
    mine = blocks if shard is None else blocks[(shard[0] - 1) * len(blocks) // shard[1]:
                                               shard[0] * len(blocks) // shard[1]]
    partial = entry / "partial"
    (partial / "blocks").mkdir(parents=True, exist_ok=True)
    todo = [b for b in mine if not (partial / "blocks" / _block_name(b)).is_file()]
    if len(todo) < len(mine):
        log(f"teacher bigrec: resuming, {len(mine) - len(todo)} of {len(mine)} blocks already done")
    latency = None
    if todo or not (partial / "items.safetensors").is_file() or _wants_latency(run, shard, partial):
        raise_if_cancelled(should_cancel)
        backend = open_backend(options.backend, run.model, run.adapter, beams=options.beams,
                               max_new_tokens=options.max_new_tokens, batch=options.batch, device=options.device,
                               dtype=options.dtype, tensor_parallel=options.tensor_parallel,
                               gpu_memory=options.gpu_memory, should_cancel=should_cancel,
                               server=_server_options(options))
        try:
            items = _item_embeddings(backend, dataset, partial)
            fits = token_budget(backend.tokenizer, llm.context_length(backend.config, backend.tokenizer)
                                - options.max_new_tokens)
            done, empty, started = 0, 0, time.perf_counter()
            total = sum(stop - start for _, start, stop in todo)
            for block in todo:
                raise_if_cancelled(should_cancel)
                empty += _run_block(run, backend, items, block, fits, partial)
                done += block[2] - block[1]
                if done >= MIN_CHECKED and empty > options.max_empty * done:
                    raise TeacherError(
                        f"{empty:,} of the first {done:,} generations were empty: the model does not answer in the "
                        "prompt's format. Fine-tune it first (`teacher finetune`), check --style/--template, or "
                        "raise --max-empty")
                rate = done / (time.perf_counter() - started)
                log(f"teacher bigrec: {block[0]} rows {block[1]:,}-{block[2]:,} done, {done:,}/{total:,} instances "
                    f"({rate:.2f}/s, {(total - done) / rate:.0f} s left)")
            if _wants_latency(run, shard, partial):
                latency = _measure_latency(run, backend, items, fits)
                write_json(partial / "latency.json", latency)
            if getattr(backend, "decoding", None) and todo:
                write_json(partial / "decoding.json", {"decoding": backend.decoding})
        finally:
            backend.close()

    if shard is not None:
        with atomic_directory(out) as tmp:
            (tmp / "blocks").mkdir()
            for block in mine:
                shutil.copy2(partial / "blocks" / _block_name(block), tmp / "blocks" / _block_name(block))
            shutil.copy2(partial / "items.safetensors", tmp / "items.safetensors")
            if (partial / "latency.json").is_file():
                shutil.copy2(partial / "latency.json", tmp / "latency.json")
            write_json(tmp / SHARD_FILE, {"key": run.key, "index": shard[0], "count": shard[1],
                                          "blocks": [list(b) for b in mine], "teacher": run.teacher,
                                          "k": options.k, "dataset_hash": dataset.content_hash})
        log(f"teacher bigrec: shard {shard[0]}/{shard[1]} written to {out}; join the shards with `teacher merge`")
        return {"key": run.key, "cached": False, "path": str(out), "shard": list(shard)}

    teacher = dict(run.teacher)
    if (partial / "decoding.json").is_file():     # what the server offered (openai: beam search or greedy)
        teacher.update(read_json(partial / "decoding.json"))
    _assemble(dataset, teacher, blocks, lambda block: partial / "blocks" / _block_name(block),
              partial / "items.safetensors", partial / "latency.json", entry / "artifacts", run.budget)
    shutil.rmtree(partial, ignore_errors=True)
    if out is None:
        return {"key": run.key, "cached": False, "path": str(entry / "artifacts")}
    _copy_dir(entry / "artifacts", out)
    return {"key": run.key, "cached": False, "path": str(out)}


def _server_options(options: BigRecOptions) -> dict | None:
    if options.backend != "openai":
        return None
    return {name: getattr(options, name) for name in OPENAI_OPTIONS}


def merge_shards(dataset: PreparedDataset, shards: list[str | Path], out: str | Path | None,
                 cache: str | Path | None = None) -> dict:
    """Join `--shard i/n` outputs into the artifacts an unsharded run writes (byte for byte), in the
    cache entry and copied to `out` (`out=None`: `path` is the cache entry's artifacts, not copied)."""
    records = []
    for directory in map(Path, shards):
        if not (directory / SHARD_FILE).is_file():
            raise TeacherError(f"{directory}: not a teacher shard (no {SHARD_FILE}); pass the --out directories of "
                               "`teacher bigrec --shard i/n`")
        records.append((read_json(directory / SHARD_FILE), directory))
    first = records[0][0]
    for record, directory in records:
        if record["key"] != first["key"]:
            raise TeacherError(f"{directory}: shard of another teacher run (key {record['key']}, the first shard has "
                               f"{first['key']}); every shard must come from the same command with another --shard")
        if record["count"] != first["count"]:
            raise TeacherError(f"{directory}: shard {record['index']}/{record['count']}, but the first shard is one of "
                               f"{first['count']}")
    if first["dataset_hash"] != dataset.content_hash:
        raise TeacherError(f"{records[0][1]}: the shards were computed on another prepared dataset; pass --data of "
                           "the run that made them")
    present = sorted(record["index"] for record, _ in records)
    if present != list(range(1, first["count"] + 1)):
        missing = sorted(set(range(1, first["count"] + 1)) - set(present))
        repeated = sorted({i for i in present if present.count(i) > 1})
        raise TeacherError(f"shards to merge: {'missing ' + str(missing) if missing else ''}"
                           f"{' repeated ' + str(repeated) if repeated else ''} of {first['count']}; pass each shard "
                           "exactly once")
    records.sort(key=lambda r: r[0]["index"])
    where = {tuple(b): directory / "blocks" / _block_name(b) for record, directory in records for b in record["blocks"]}
    blocks = [tuple(b) for record, _ in records for b in record["blocks"]]
    latency = next((d / "latency.json" for _, d in records if (d / "latency.json").is_file()), None)
    entry = (Path(cache) if cache is not None else default_cache()) / first["key"]
    budget = None
    if first["teacher"].get("budget"):
        from distill.teacher.budget import select
        chosen = first["teacher"]["budget"]
        budget = select(dataset, chosen["budget"], chosen["rule"], chosen["seed"])
    _assemble(dataset, first["teacher"], blocks, where.__getitem__, records[0][1] / "items.safetensors", latency,
              entry / "artifacts", budget)
    if out is None:
        return {"key": first["key"], "path": str(entry / "artifacts"), "shards": len(records)}
    _copy_dir(entry / "artifacts", out)
    return {"key": first["key"], "path": str(out), "shards": len(records)}


def _wants_latency(run: _Plan, shard, partial: Path) -> bool:
    """Latency is measured once per run (by shard 1 of a sharded one) and kept with the checkpoint."""
    return (run.options.latency_requests > 0 and (shard is None or shard[0] == 1)
            and not (partial / "latency.json").is_file())


def _block_name(block) -> str:
    split, start, stop = block
    return f"{split}-{start:010d}-{stop:010d}.safetensors"


def _item_embeddings(backend, dataset: PreparedDataset, partial: Path) -> torch.Tensor:
    file = partial / "items.safetensors"
    if file.is_file():
        return torch.from_numpy(load_file(str(file))["embeddings"])
    items = backend.embed([title or "" for title in dataset.titles])
    if not torch.isfinite(items).all():
        raise TeacherError("the base model produced non-finite embeddings for item titles; try --dtype fp32")
    _save_atomic(file, {"embeddings": items.numpy()})
    return items


def _run_block(run: _Plan, backend, items: torch.Tensor, block, fits, partial: Path) -> int:
    """Generate, ground and checkpoint one block; returns how many of its generations were empty."""
    name, start, stop = block
    split = run.dataset.split(name)
    rows = run.row_index(name)[start:stop]
    seq, len_seq = split.seq[rows], split.len_seq[rows]
    began = time.perf_counter()
    prompts = instance_prompts(run.dataset.titles, seq, len_seq, run.style, fits,
                               should_cancel=getattr(backend, "should_cancel", None))
    raw = backend.generate(prompts)
    answers = [clean_generation(text) for text in raw]
    empty = sum(not answer for answer in answers)
    queries = backend.embed([answer or EMPTY_ANSWER for answer in answers])
    ranked = nearest_items(queries, items, run.options.k, histories=seq, targets=split.next[rows])
    seconds = time.perf_counter() - began
    arrays = {key: ranked[key] for key in ("ids", "dist", "ids_new", "dist_new", "target_dist")}
    _save_atomic(partial / "blocks" / _block_name(block), arrays,
                 {"generations": json.dumps(raw), "empty": str(empty), "seconds": repr(seconds)})
    return empty


def _measure_latency(run: _Plan, backend, items: torch.Tensor, fits) -> dict:
    """p50/p95 of single-history requests (prompt -> generation -> grounding), as the students' are."""
    source = next((run.dataset.split(s) for s in ("test", "val", "train") if len(run.dataset.split(s))), None)
    n = min(run.options.latency_requests, len(source))
    prompts = instance_prompts(run.dataset.titles, source.seq[:n], source.len_seq[:n], run.style, fits)
    timings = []
    for i in range(n + 1):  # the first request warms up
        began = time.perf_counter()
        answer = clean_generation(backend.generate([prompts[i % n]])[0]) or EMPTY_ANSWER
        nearest_items(backend.embed([answer]), items, run.options.k)
        if i:
            timings.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": float(np.percentile(timings, 50)), "p95_ms": float(np.percentile(timings, 95)),
            "requests": n, "device": backend.device(), "backend": backend.name}


def _assemble(dataset: PreparedDataset, teacher: dict, blocks, locate: Callable[[tuple], Path], items_file: Path,
              latency_file: Path | None, target: Path, budget: tuple | None = None) -> None:
    """Concatenate the blocks into teacher artifacts (+ metrics, generations, latency) at `target`;
    with a `budget` (order, count, record) the train blocks hold the budget's rows, and with a
    recorded eval_sample the val/test blocks hold the sample's rows: each put back in its place among
    the split's instances (the others zero, marked unranked)."""
    rows_of = {"train": None if budget is None else np.sort(budget[0][:budget[1]]), **_sampled_rows(dataset, teacher)}
    parts: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    generations, empty, seconds = [], {s: 0 for s in SPLITS}, 0.0
    for block in blocks:
        file = locate(block)
        if not file.is_file():
            raise TeacherError(f"{file}: block missing; run the teacher (or the shard holding rows {block[1]:,}-"
                               f"{block[2]:,} of {block[0]}) again")
        arrays, meta = _load_block(file)
        for key, array in arrays.items():
            parts[block[0]].setdefault(key, []).append(array)
        texts = json.loads(meta["generations"])
        chosen = rows_of[block[0]]
        rows = range(block[1], block[2]) if chosen is None else chosen[block[1]:block[2]]
        generations += [{"split": block[0], "row": int(row), "text": text} for row, text in zip(rows, texts)]
        empty[block[0]] += int(meta["empty"])
        seconds += float(meta["seconds"])
    splits = [s for s in SPLITS if parts[s]]
    cat = {s: {key: np.concatenate(v) for key, v in parts[s].items()} for s in splits}
    alternative = "ids" if teacher["exclude_history"] else "ids_new"
    label = "history_included" if teacher["exclude_history"] else "history_excluded"
    other_list = {}   # the teacher's metrics with the other history rule, on the rows it ranked
    for split in ("val", "test"):
        if split in cat:
            chosen, targets = rows_of[split], dataset.split(split).next
            other_list[f"{split}_{label}"] = teacher_metrics(
                cat[split][alternative], targets[:len(cat[split][alternative])] if chosen is None else targets[chosen])
    for split in splits:
        if rows_of[split] is not None:
            n = len(dataset.split(split))
            for key, array in cat[split].items():
                full = np.zeros((n, *array.shape[1:]), dtype=array.dtype)
                full[rows_of[split]] = array
                cat[split][key] = full
    primary, other = ("ids_new", "dist_new") if teacher["exclude_history"] else ("ids", "dist")
    meta = dict(teacher, empty_generations=empty)
    artifacts = TeacherArtifacts.build(dataset, {s: cat[s][primary] for s in splits},
                                       {s: cat[s][other] for s in splits},
                                       load_file(str(items_file))["embeddings"], meta,
                                       {s: cat[s]["target_dist"] for s in splits}, limit=teacher.get("limit"))
    for split in ("val", "test"):
        if split in cat and rows_of[split] is not None:
            mask = np.zeros(len(dataset.split(split)), dtype=np.uint8)
            mask[rows_of[split]] = 1
            artifacts.ranked[split] = mask
    if budget is not None:
        from distill.teacher.budget import apply_budget
        apply_budget(artifacts, *budget)
    report = teacher_report(artifacts, dataset)
    report.update(other_list)
    instances = sum(b[2] - b[1] for b in blocks)
    latency = read_json(latency_file) if latency_file is not None and Path(latency_file).is_file() else {}
    latency.update({"instances": instances, "seconds": seconds,
                    "throughput": instances / seconds if seconds > 0 else None,
                    "throughput_unit": "instances/s, generation + grounding, one worker"})
    lines = "".join(json.dumps(g, ensure_ascii=False) + "\n" for g in generations)
    artifacts.save(target, metrics=report, extra={"generations.jsonl": lines, "latency.json": latency})


def _load_block(file: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    try:
        with safe_open(str(file), "np") as handle:
            meta = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:
        raise TeacherError(f"{file}: cannot read this block ({exc}); delete it and run the teacher again") from None
    return arrays, meta


def _save_atomic(file: Path, arrays: dict, metadata: dict | None = None) -> None:
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    save_file(arrays, str(tmp), metadata=metadata)
    os.replace(tmp, file)


def _copy_dir(source: Path, out: str | Path) -> None:
    with atomic_directory(out) as tmp:
        for file in Path(source).iterdir():
            shutil.copy2(file, tmp / file.name)
