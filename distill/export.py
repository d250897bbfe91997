"""Export a trained student for serving without the studio (`python -m distill export`).

`export_run` writes one directory:

    model.onnx | model.pt   the student plus its top-k, ONNX (onnxruntime) or TorchScript (torch.jit.load)
    items.json              {"ids": [external item id], "titles": [...]}: index = the model's item index
    model_card.json / .md   dataset, student, teacher, protocol, metrics, the interface, the check, latency
    serve.py                a standalone example: `python serve.py --history a,b,c --k 10` (numpy +
                            onnxruntime for ONNX, numpy + torch for TorchScript; no `distill` import)

The model's interface (also in the card's `interface`):

    inputs   seq      int64 [B, L]  item indices, oldest first, right-padded with pad_id (= num_items);
                                    a longer history keeps its last L items
             len_seq  int64 [B]     true lengths, 1..L
             exclude  int64 [B, E]  item indices never answered (scored -inf), E >= 1, padded with pad_id;
                                    `recommend` excludes every item of the (full) history, so pass it
                                    here; [[pad_id]] excludes nothing
    outputs  ids      int64 [B, k]  the k best items, best first (k fixed at export)
             scores   float32 [B, k] their scores, descending; -inf only when fewer than k items are
                                    left after `exclude`: the caller drops those entries

B and E are dynamic, L is the run's window. The scores are the student's raw logits in eval mode
(dropout off), as `TrainedStudent.recommend` computes them.

Before the directory appears, the exported model answers every test history of the run's dataset
(each with its window excluded) and must give the torch student's top-k ids, scores within
CHECK_TOLERANCE; otherwise ExportError names the first history that differs and nothing is written
(`atomic_directory`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.config import STUDENTS
from distill.data.dataset import PreparedDataset
from distill.errors import ConfigError, DistillError
from distill.inference import TrainedStudent, exclude_items
from distill.io import atomic_directory, read_json, write_json
from distill.latency import percentiles_ms, request_source

EXPORT_FORMATS = ("onnx", "torchscript")
EXPORTABLE_STUDENTS = STUDENTS          # gru4rec, sasrec, dros (a SASRec), caser
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
RUNTIMES = {"onnx": "onnxruntime", "torchscript": "torchscript"}
OPSET = 20
DEFAULT_K = 20
CHECK_TOLERANCE = 1e-4     # largest |exported - torch| score accepted
TIE_TOLERANCE = 1e-6       # two items whose torch scores are this close may come in either order
CHECK_BATCH = 256
CARD_FORMAT_VERSION = 1
REPORTED = ("hr@10", "ndcg@10", "hr@20", "ndcg@20")


class ExportError(DistillError):
    """A run that cannot be exported, or an exported model that does not answer as the student does."""


class ExportedRecommender(nn.Module):
    """The student with its exclusion and top-k: (seq, len_seq, exclude) -> (ids, scores)."""

    def __init__(self, student: nn.Module, k: int):
        super().__init__()
        self.student = student
        self.k = k

    def forward(self, seq: torch.Tensor, len_seq: torch.Tensor, exclude: torch.Tensor):
        top = exclude_items(self.student(seq, len_seq), exclude).topk(self.k, dim=1)
        return top.indices, top.values


def export_run(run_dir: str | Path, dataset: PreparedDataset | str | Path, fmt: str, out: str | Path,
               k: int = DEFAULT_K, uncertainty: dict | None = None, name: str | None = None, *,
               requests: int = 200, batch_size: int = 256) -> dict:
    """Export the run directory `run_dir` to `out` as `fmt` ("onnx" | "torchscript"), check it on
    the test histories of `dataset` (the prepared dataset the run was trained on, or its directory),
    time it, and return the model card (also written to out/model_card.json).

    `uncertainty`: a seeds summary (seeds.json) or its "uncertainty" part, shown with the metrics.
    `name`: the dataset's name for the card. `requests`: single-history requests timed per runtime;
    `batch_size`: the batch of the throughput figure.
    """
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format {fmt!r} is unknown; choose one of {', '.join(EXPORT_FORMATS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k={k!r}: give a whole number of items of at least 1")
    if uncertainty is not None and not isinstance(uncertainty, dict):
        raise ConfigError("uncertainty must be a seeds summary (seeds.json) or its \"uncertainty\" object")
    run_dir, out = Path(run_dir), Path(out)
    meta = read_json(run_dir / "config.json")
    metrics = read_json(run_dir / "metrics.json")
    kind = meta.get("config", {}).get("student")
    if kind not in EXPORTABLE_STUDENTS:
        raise ExportError(f"{run_dir}: student {kind!r} cannot be exported; exportable students: "
                          f"{', '.join(EXPORTABLE_STUDENTS)}")
    if not isinstance(dataset, PreparedDataset):
        dataset = PreparedDataset.load(dataset)
    if dataset.content_hash != meta.get("dataset_hash"):
        raise ExportError(f"{run_dir} was trained on dataset {str(meta.get('dataset_hash'))[:12]}, not on this one "
                          f"({dataset.content_hash[:12]}); give the prepared dataset the run was trained on")
    _refuse_overwriting(out, run_dir, dataset.path)
    student = TrainedStudent.load(run_dir)
    k = min(k, student.model.num_items)
    split_name, split = request_source(dataset)
    if split is None:
        raise ExportError(f"{run_dir}: the dataset has no histories to check the export on")
    exported = ExportedRecommender(student.model, k).eval()

    with atomic_directory(out) as tmp:
        model_file = tmp / MODEL_FILES[fmt]
        opset = _export_model(exported, fmt, model_file, student.max_len)
        run = load_runtime(fmt, model_file, threads=torch.get_num_threads())   # as many threads as torch
        check = check_export(student, run, split, k, fmt)
        check["split"] = split_name
        latency = measure_latency(exported, run, split, fmt, requests, batch_size)
        write_json(tmp / "items.json", {"ids": student.item_ids, "titles": student.titles})
        card = model_card(meta, metrics, dataset, fmt, k, opset, check, latency, uncertainty, name)
        write_json(tmp / "model_card.json", card)
        (tmp / "model_card.md").write_text(render_card(card), encoding="utf-8")
        (tmp / "serve.py").write_text(serve_script(fmt), encoding="utf-8")
    return card


def find_dataset(run_dir: str | Path) -> Path | None:
    """The prepared dataset a run was trained on, where the studio's layouts put it: `data/` beside
    the run (`demo`) or beside its seeds folder, matched by content hash; None when not found."""
    run_dir = Path(run_dir).resolve()
    wanted = read_json(run_dir / "config.json").get("dataset_hash")
    for folder in (run_dir.parent, run_dir.parent.parent):
        candidate = folder / "data"
        stats = candidate / "stats.json"
        if stats.is_file():
            try:
                found = read_json(stats).get("content_hash")
            except DistillError:
                continue
            if found == wanted:
                return candidate
    return None


def _refuse_overwriting(out: Path, run_dir: Path, data_dir: Path | None) -> None:
    target = out.resolve()
    for kept, what in ((run_dir, "the run directory"), (data_dir, "the dataset directory")):
        if kept is None:
            continue
        kept = Path(kept).resolve()
        if target == kept or kept.is_relative_to(target):
            raise ConfigError(f"--out {out}: it would replace {what} {kept}; choose another directory")


@contextlib.contextmanager
def _quiet():
    """The exporters' warnings and log notices (tracer warnings, torchvision notices) hidden."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _example_inputs(max_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of 2 (so the batch dimension is not specialised to 1) with two exclusion columns."""
    seq = torch.full((2, max_len), pad_id, dtype=torch.int64)
    seq[0, 0] = 0
    seq[1, :] = torch.arange(max_len) % max(pad_id, 1)
    len_seq = torch.tensor([1, max_len], dtype=torch.int64)
    exclude = seq[:, :2].clone()
    return seq, len_seq, exclude


def _export_model(exported: ExportedRecommender, fmt: str, path: Path, max_len: int) -> int | None:
    """Write the model file; the ONNX opset (None for TorchScript)."""
    example = _example_inputs(max_len, exported.student.num_items)
    try:
        with _quiet(), torch.no_grad():
            if fmt == "torchscript":
                torch.jit.trace(exported, example).save(str(path))
                return None
            batch, columns = torch.export.Dim("batch"), torch.export.Dim("exclude")
            large = sum(p.numel() * p.element_size() for p in exported.parameters()) > 1_500_000_000
            torch.onnx.export(exported, example, str(path), dynamo=True, opset_version=OPSET,
                              external_data=large, input_names=["seq", "len_seq", "exclude"],
                              output_names=["ids", "scores"], verbose=False,
                              dynamic_shapes={"seq": {0: batch}, "len_seq": {0: batch},
                                              "exclude": {0: batch, 1: columns}})
    except Exception as exc:  # the exporters raise many types; the first line says what failed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"the {type(exported.student).__name__} student could not be exported to {fmt}: "
                          f"{first}") from None
    if fmt == "onnx":
        import onnx
        model = onnx.load(str(path), load_external_data=False)
        return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    return None


def load_runtime(fmt: str, path: str | Path, threads: int | None = None):
    """The exported model loaded as `run(seq, len_seq, exclude) -> (ids, scores)`, numpy in and out."""
    if fmt == "onnx":
        import onnxruntime
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(seq, len_seq, exclude):
            ids, scores = session.run(["ids", "scores"], {"seq": seq, "len_seq": len_seq, "exclude": exclude})
            return ids, scores
        return run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # torch.jit is deprecated, still supported
        module = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.no_grad()
    def run(seq, len_seq, exclude):
        ids, scores = module(torch.from_numpy(seq), torch.from_numpy(len_seq), torch.from_numpy(exclude))
        return ids.numpy(), scores.numpy()
    return run


@torch.no_grad()
def check_export(student: TrainedStudent, run, split, k: int, fmt: str) -> dict:
    """The exported model's answers on every history of `split` against the torch student's (each
    history's own items excluded, as `recommend` does): same ids in the same order (items whose
    torch scores tie within TIE_TOLERANCE in either order), scores within CHECK_TOLERANCE."""
    model = student.model.eval()
    seq_all = np.ascontiguousarray(split.seq, dtype=np.int64)
    len_all = np.ascontiguousarray(split.len_seq, dtype=np.int64)
    worst = 0.0
    for start in range(0, len(split), CHECK_BATCH):
        seq, len_seq = seq_all[start:start + CHECK_BATCH], len_all[start:start + CHECK_BATCH]
        scores = exclude_items(model(torch.from_numpy(seq), torch.from_numpy(len_seq)), torch.from_numpy(seq))
        scores = scores.numpy().astype(np.float64)
        expected = torch.from_numpy(scores).topk(k, dim=1)
        want_ids, want_scores = expected.indices.numpy(), expected.values.numpy()
        got_ids, got_scores = (np.asarray(a) for a in run(seq, len_seq, seq))
        for row in range(seq.shape[0]):
            problem, diff = _compare_row(scores[row], want_ids[row], want_scores[row], got_ids[row],
                                         got_scores[row].astype(np.float64))
            worst = max(worst, diff)
            if problem:
                index = start + row
                history = [student.item_ids[i] for i in seq[row, :len_seq[row]]]
                raise ExportError(f"the exported {fmt} model does not answer as the torch student on test history "
                                  f"row {index} (items {', '.join(history)}): {problem}")
    return {"histories": len(split), "k": k, "max_abs_score_diff": worst, "tolerance": CHECK_TOLERANCE,
            "tie_tolerance": TIE_TOLERANCE, "history_excluded": True}


def _compare_row(scores, want_ids, want_scores, got_ids, got_scores) -> tuple[str | None, float]:
    """(what differs or None, the largest score difference) for one history."""
    finite = np.isfinite(want_scores)
    if not np.array_equal(finite, np.isfinite(got_scores)):
        return "it answers a different number of items", math.inf
    if not finite.any():
        return None, 0.0
    want_ids, got_ids = want_ids[finite], got_ids[finite]
    diff = float(np.abs(want_scores[finite] - got_scores[finite]).max())
    if not np.array_equal(want_ids, got_ids):
        # An exported ranking is still right if each item it puts at a rank ties the torch item there.
        valid = ((got_ids >= 0) & (got_ids < scores.shape[0])).all()
        tied = valid and np.abs(scores[got_ids] - want_scores[finite]).max() <= TIE_TOLERANCE
        if not tied or len(set(got_ids.tolist())) != len(got_ids):
            return (f"top ids {got_ids.tolist()} where the torch student answers {want_ids.tolist()} "
                    f"(internal item indices)"), diff
    if diff > CHECK_TOLERANCE:
        return f"scores differ by up to {diff:.3g} (> {CHECK_TOLERANCE:g})", diff
    return None, diff


def _timings(call, n: int, requests: int, warmup: int = 10) -> dict:
    timings = []
    for i in range(warmup + requests):
        start = time.perf_counter()
        call(i % n)
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    return percentiles_ms(np.array(timings) * 1000)


def _throughput(call, n: int, batch_size: int, batches: int = 20) -> float:
    """Users/s over `batches` calls of `batch_size` histories (cycling through the n there are),
    after one warm-up call."""
    size = min(batch_size, n)
    starts = [(i * size) % (n - size + 1) for i in range(batches)]
    call(0, size)
    start = time.perf_counter()
    for s in starts:
        call(s, size)
    return batches * size / (time.perf_counter() - start)


@torch.no_grad()
def measure_latency(exported: ExportedRecommender, run, split, fmt: str, requests: int = 200,
                    batch_size: int = 256) -> dict:
    """p50/p95/mean ms of single-history requests (the history excluded, top-k included) and users/s
    at `batch_size`, for the eager torch student and the exported model in its runtime (`run`, with
    as many threads as torch), on the CPU."""
    seq = np.ascontiguousarray(split.seq, dtype=np.int64)
    len_seq = np.ascontiguousarray(split.len_seq, dtype=np.int64)
    seq_t, len_t = torch.from_numpy(seq), torch.from_numpy(len_seq)
    n = len(split)
    threads = torch.get_num_threads()
    runtime = run
    report = {"requests": requests, "batch_size": batch_size, "threads": threads,
              "device": f"cpu ({threads} threads)", "machine": platform.machine(),
              "request": "one history, its items excluded, top-k"}
    for label, call in (("torch", lambda s, b=1: exported(seq_t[s:s + b], len_t[s:s + b], seq_t[s:s + b])),
                        (RUNTIMES[fmt], lambda s, b=1: runtime(seq[s:s + b], len_seq[s:s + b], seq[s:s + b]))):
        report[label] = {**_timings(call, n, requests), "throughput": _throughput(call, n, batch_size),
                         "throughput_unit": f"users/s at batch {batch_size}"}
    return report


def model_card(meta: dict, metrics: dict, dataset: PreparedDataset, fmt: str, k: int, opset: int | None,
               check: dict, latency: dict, uncertainty: dict | None, name: str | None) -> dict:
    import distill
    config = meta["config"]
    if uncertainty is not None and "uncertainty" in uncertainty:
        uncertainty = uncertainty["uncertainty"]
    stats = dataset.stats
    max_len, num_items = meta["max_len"], meta["num_items"]
    interface = {
        "format": fmt, "file": MODEL_FILES[fmt], "runtime": RUNTIMES[fmt], "opset": opset,
        "k": k, "max_len": max_len, "num_items": num_items, "pad_id": num_items,
        "inputs": [
            {"name": "seq", "dtype": "int64", "shape": ["batch", max_len],
             "meaning": "item indices (items.json order), oldest first, right-padded with pad_id; "
                        "a longer history keeps its last max_len items"},
            {"name": "len_seq", "dtype": "int64", "shape": ["batch"], "meaning": "true history lengths, 1..max_len"},
            {"name": "exclude", "dtype": "int64", "shape": ["batch", "exclude"],
             "meaning": "item indices never answered (scored -inf), at least one column, padded with pad_id; "
                        "pass every item of the full history to answer as `recommend` does, [[pad_id]] to "
                        "exclude nothing"},
        ],
        "outputs": [
            {"name": "ids", "dtype": "int64", "shape": ["batch", k], "meaning": "the k best item indices, best first"},
            {"name": "scores", "dtype": "float32", "shape": ["batch", k],
             "meaning": "their raw scores, descending; -inf only when fewer than k items remain after "
                        "exclude: drop those entries"},
        ],
        "dynamic": ["batch", "exclude"],
        "scoring": "eval mode (dropout off), as `python -m distill recommend`",
    }
    card = {
        "card_format_version": CARD_FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "studio_version": _studio_version(distill.__version__),
        "exporter": _exporter_versions(fmt),
        "dataset": {"name": name or stats.get("name"), "content_hash": dataset.content_hash,
                    "users": stats.get("users"), "items": stats.get("items", dataset.num_items),
                    "interactions": stats.get("interactions"), "instances": stats.get("instances"),
                    "split": stats.get("split", "time"), "max_len": max_len},
        "student": {"type": config["student"], "config": config},
        "teacher": metrics.get("teacher"),
        "distilled": metrics.get("distilled"),
        "lam": metrics.get("lam"),
        "protocol": metrics.get("protocol"),
        "metrics": {"val": metrics.get("val"), "test": metrics.get("test"), "best_epoch": metrics.get("best_epoch"),
                    "uncertainty": uncertainty},
        "interface": interface,
        "check": check,
        "latency": latency,
    }
    if config.get("eval_mode") == "train":
        card["notes"] = ["the metrics were measured with dropout on (eval_mode=train, as the reference code); "
                         "the exported model scores with dropout off"]
    return card


def _studio_version(fallback: str) -> str:
    from importlib import metadata
    try:
        return metadata.version("dllm2rec-studio")
    except metadata.PackageNotFoundError:
        return fallback


def _exporter_versions(fmt: str) -> dict:
    versions = {"torch": torch.__version__}
    if fmt == "onnx":
        import onnx
        import onnxruntime
        versions.update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    return versions


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def render_card(card: dict) -> str:
    """model_card.md: the card's fields for a person."""
    data, student, interface, latency = card["dataset"], card["student"], card["interface"], card["latency"]
    teacher = card["teacher"]
    lines = [f"# {student['type']} on {data['name'] or 'dataset ' + data['content_hash'][:12]}", "",
             f"Exported {card['created']} by DLLM2Rec Studio {card['studio_version']} as "
             f"{interface['format']} (`{interface['file']}`"
             + (f", ONNX opset {interface['opset']})." if interface["opset"] else ", TorchScript)."), "",
             "## Dataset", "",
             f"- content hash `{data['content_hash']}`",
             f"- {data['users']} users, {data['items']} items, {data['interactions']} interactions; "
             f"{data['split']} split; instances "
             + ", ".join(f"{split} {(data['instances'] or {}).get(split)}" for split in ("train", "val", "test")),
             f"- history window L = {data['max_len']}", "",
             "## Student", "",
             f"- {student['type']}" + (f", distilled (lambda_d {card['lam']})" if card["distilled"] else ", not distilled"),
             f"- teacher: {_teacher_line(teacher)}",
             "- config: " + ", ".join(f"{key}={value}" for key, value in sorted(student["config"].items())), "",
             "## Protocol", ""]
    lines += [f"- {key}: {value}" for key, value in sorted((card["protocol"] or {}).items())]
    lines += ["", "## Metrics", "", "| split | " + " | ".join(REPORTED) + " |",
              "|---" * (len(REPORTED) + 1) + "|"]
    uncertainty = card["metrics"].get("uncertainty") or {}
    for split in ("val", "test"):
        values = card["metrics"].get(split) or {}
        cells = []
        for metric in REPORTED:
            u = (uncertainty.get(split) or {}).get(metric)
            cell = _fmt(values.get(metric))
            if u and u.get("ci95"):
                cell += f" (seeds mean {_fmt(u['mean'])}, 95% CI {_fmt(u['ci95'][0])}-{_fmt(u['ci95'][1])}, n={u.get('n')})"
            cells.append(cell)
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    lines += [""] + [f"Note: {note}." for note in card.get("notes", [])]
    lines += ["", "## Interface", "",
              f"Inputs (batch and exclude dynamic, L = {interface['max_len']}, pad_id = {interface['pad_id']}):", ""]
    lines += [f"- `{i['name']}` {i['dtype']} {i['shape']}: {i['meaning']}" for i in interface["inputs"]]
    lines += ["", f"Outputs (k = {interface['k']}, fixed at export):", ""]
    lines += [f"- `{o['name']}` {o['dtype']} {o['shape']}: {o['meaning']}" for o in interface["outputs"]]
    lines += ["", "Item index i is `items.json` ids[i] (external id) and titles[i]. `serve.py` does the "
              "mapping, padding and exclusion: `python serve.py --history a,b,c --k 10`.", "",
              "## Check at export", "",
              f"Every {card['check']['split']} history ({card['check']['histories']}) answered with the torch "
              f"student's top-{card['check']['k']} ids; largest score difference "
              f"{card['check']['max_abs_score_diff']:.2g} (tolerance {card['check']['tolerance']:g}).", "",
              "## Latency", "",
              f"{latency['device']}, {latency['requests']} single-history requests (p50/p95 ms), "
              f"throughput at batch {latency['batch_size']}:", "",
              "| runtime | p50 ms | p95 ms | users/s |", "|---|---|---|---|"]
    for runtime in ("torch", "onnxruntime", "torchscript"):
        if runtime in latency:
            t = latency[runtime]
            lines.append(f"| {runtime} | {t['p50_ms']:.3f} | {t['p95_ms']:.3f} | {t['throughput']:.0f} |")
    return "\n".join(lines) + "\n"


def _teacher_line(teacher: dict | None) -> str:
    if not teacher:
        return "none"
    return ", ".join(f"{key} {value}" for key, value in teacher.items() if not isinstance(value, (dict, list)))


_TORCHSCRIPT_BACKEND = '''import torch


def load_backend(path: Path):
    """The exported model as `run(seq, len_seq, exclude) -> (ids, scores)` on numpy arrays."""
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(seq, len_seq, exclude):
        with torch.no_grad():
            ids, scores = module(torch.from_numpy(seq), torch.from_numpy(len_seq), torch.from_numpy(exclude))
        return ids.numpy(), scores.numpy()

    return run
'''


def serve_script(fmt: str) -> str:
    """serve.py for `fmt`: the template with its runtime (onnxruntime, or torch for TorchScript)."""
    template = (Path(__file__).with_name("serve_template.py")).read_text(encoding="utf-8")
    if fmt == "onnx":
        return template
    begin, end = "# BEGIN BACKEND\n", "# END BACKEND\n"
    head, rest = template.split(begin, 1)
    _, tail = rest.split(end, 1)
    return (head + begin + _TORCHSCRIPT_BACKEND + end + tail).replace(
        "(onnxruntime for model.onnx)", "(torch for the TorchScript model.pt)")
