"""The trainer: one student, optionally distilled from a teacher, under the SPEC §6 protocol.

Adam, batches of shuffled training instances, one sampled negative each; evaluation on val after
every epoch; the best val NDCG@20 epoch's weights are kept and restored; training stops after
`patience` epochs without gain; test is reported at that epoch. `lam=auto` trains the plain
student and the distilled one for every lambda_d in LAM_GRID and keeps the best on val, so a
teacher that hurts is caught before anyone deploys its student.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from distill.config import LAM_GRID, TrainConfig, resolve_device
from distill.data.dataset import PreparedDataset
from distill.errors import ConfigError, DistillError, TeacherError
from distill.evaluate import CUTOFFS, evaluate
from distill.io import atomic_directory, read_json, write_json
from distill.losses import (bce_loss, candidate_weights, dro_loss, instance_confidence,
                            propensity_scores, ranking_distillation_loss, sample_negatives)
from distill.students import SequentialRecommender, build_student

SELECTION_METRIC = "ndcg@20"


class Cancelled(DistillError):
    """Raised inside training when `Callbacks.should_cancel` says so (checked every batch)."""


@dataclass
class Callbacks:
    """Hooks for a caller (a Celery task, the CLI): per-epoch records, progress, cancellation."""

    on_epoch: Callable[[dict], None] | None = None       # record: epoch, loss, seconds, val, lam
    on_progress: Callable[[float], None] | None = None   # fraction of max epochs done, in [0, 1]
    should_cancel: Callable[[], bool] | None = None

    def epoch(self, record: dict) -> None:
        if self.on_epoch:
            self.on_epoch(record)

    def progress(self, fraction: float) -> None:
        if self.on_progress:
            self.on_progress(min(1.0, max(0.0, fraction)))

    def check_cancel(self) -> None:
        if self.should_cancel and self.should_cancel():
            raise Cancelled("run cancelled")


@dataclass
class TrainResult:
    model: SequentialRecommender
    config: TrainConfig
    lam: float
    best_epoch: int
    val: dict
    test: dict
    history: list[dict] = field(default_factory=list)
    lam_auto: dict | None = None
    distilled: bool = False
    seconds: float = 0.0


def train(dataset: PreparedDataset, config: TrainConfig, teacher=None,
          callbacks: Callbacks | None = None) -> TrainResult:
    """Train one student; with `lam=auto`, the grid of SPEC §6 and the best on val."""
    callbacks = callbacks or Callbacks()
    if teacher is not None:
        teacher.check_against(dataset)
    if not config.lam_auto:
        lam = config.lam_value if teacher is not None else 0.0
        return _train_one(dataset, config, lam, teacher, callbacks)
    if teacher is None:
        raise ConfigError("lam=auto needs a teacher (--teacher TDIR) to choose lambda_d against")
    started = time.perf_counter()
    results = []
    for i, lam in enumerate(LAM_GRID):
        stage = Callbacks(on_epoch=callbacks.on_epoch, should_cancel=callbacks.should_cancel,
                          on_progress=lambda f, i=i: callbacks.progress((i + f) / len(LAM_GRID)))
        results.append(_train_one(dataset, config, lam, teacher if lam > 0 else None, stage))
    # Ties go to the smaller lambda_d, so a teacher that adds nothing leaves the plain student.
    best = max(results, key=lambda r: (r.val.get(SELECTION_METRIC, 0.0), -r.lam))
    best.lam_auto = {
        "grid": list(LAM_GRID),
        "chosen": best.lam,
        "selected_on": "val",
        f"val_{SELECTION_METRIC}": {str(r.lam): r.val.get(SELECTION_METRIC, 0.0) for r in results},
        f"test_{SELECTION_METRIC}": {str(r.lam): r.test.get(SELECTION_METRIC, 0.0) for r in results},
        "plain_val": results[0].val.get(SELECTION_METRIC, 0.0),
    }
    best.seconds = time.perf_counter() - started
    return best


class _TeacherSignal:
    """The parts of the teacher the losses need, as tensors on the training device."""

    def __init__(self, teacher, config: TrainConfig, device: torch.device):
        ids = teacher.ids["train"]
        if ids.shape[1] < config.candidate_k:
            raise TeacherError(f"candidate_k={config.candidate_k} but the teacher kept only top-{ids.shape[1]}; "
                               f"set candidate_k <= {ids.shape[1]} or rerun the teacher with a larger --k")
        k = config.candidate_k
        self.candidates = torch.as_tensor(np.ascontiguousarray(ids[:, :k]), dtype=torch.long, device=device)
        self.distances = None
        self.instance_weights = None
        if config.confidence == "candidate":
            dist = teacher.distances["train"][:, :k]
            self.distances = torch.as_tensor(np.ascontiguousarray(dist), dtype=torch.float32, device=device)
        else:
            target = teacher.target_distances.get("train")
            if target is None:
                raise ConfigError("confidence=paper needs the teacher's distance from its answer to each true "
                                  "next item (train_target_dist in ranks.safetensors), which this teacher did not "
                                  "write (the reference code's files have none); use confidence=candidate")
            self.instance_weights = instance_confidence(
                torch.as_tensor(target, dtype=torch.float32, device=device), config.confidence_beta)


def _train_one(dataset: PreparedDataset, config: TrainConfig, lam: float, teacher,
               callbacks: Callbacks) -> TrainResult:
    started = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)

    embeddings = None
    if teacher is not None and config.ed_weight > 0 and teacher.item_embeddings is not None:
        embeddings = torch.as_tensor(teacher.item_embeddings, dtype=torch.float32)
    model = build_student(config, dataset.num_items, dataset.max_len, embeddings).to(device)
    # The fused kernel is one pass over the parameters instead of several (4x faster on CPU).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=1e-8, weight_decay=config.weight_decay,
                                 fused=True)

    train_split = dataset.train
    seq = torch.as_tensor(train_split.seq, device=device)
    len_seq = torch.as_tensor(train_split.len_seq, device=device)
    target = torch.as_tensor(train_split.next, device=device)
    signal = _TeacherSignal(teacher, config, device) if teacher is not None and lam > 0 else None
    ps = propensity_scores(train_split.next, dataset.num_items).to(device) if config.dro_alpha > 0 else None
    objective = _Objective(model, config, lam, signal, ps)
    selection_split = dataset.split(config.selection)

    best_score, best_epoch, best_state, best_selection = -1.0, 0, None, {}
    history, stale = [], 0
    n = len(train_split)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        total_loss = torch.zeros((), device=device)
        for start in range(0, n, config.batch_size):
            callbacks.check_cancel()
            idx = order[start:start + config.batch_size]
            b_seq, b_len, b_target = seq[idx], len_seq[idx], target[idx]
            negative = sample_negatives(b_seq, b_target, dataset.num_items, generator)
            loss = objective(idx, b_seq, b_len, b_target, negative)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * idx.shape[0]
        train_seconds = time.perf_counter() - epoch_start
        metrics = evaluate(model, selection_split, CUTOFFS, config.eval_batch, device)
        record = {"epoch": epoch, "lam": lam, "loss": float(total_loss) / n, "seconds": train_seconds,
                  config.selection: metrics}
        history.append(record)
        callbacks.epoch(record)
        callbacks.progress(epoch / config.epochs)
        if not np.isfinite(record["loss"]):
            raise DistillError(f"training diverged at epoch {epoch} (loss {record['loss']}); lower lr or lam")
        score = metrics.get(SELECTION_METRIC, 0.0)
        if score > best_score:
            best_score, best_epoch, best_selection, stale = score, epoch, metrics, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state)
    if config.selection == "val":
        val, test = best_selection, evaluate(model, dataset.test, CUTOFFS, config.eval_batch, device)
    else:
        val, test = evaluate(model, dataset.val, CUTOFFS, config.eval_batch, device), best_selection
    callbacks.progress(1.0)
    return TrainResult(model=model, config=config, lam=lam, best_epoch=best_epoch, val=val, test=test,
                       history=history, distilled=teacher is not None and (lam > 0 or embeddings is not None),
                       seconds=time.perf_counter() - started)


class _Objective:
    """The training loss of one batch: BCE (+ DRO) (+ lambda_d * ranking distillation), SPEC §3-§4.

    Only the scores the losses need are computed with gradient (target, negative, K candidates);
    the full [B, num_items] score matrix is built with gradient only when DRO needs it, and
    without gradient when only the consistency weight needs the student's top-K.
    """

    def __init__(self, model: SequentialRecommender, config: TrainConfig, lam: float,
                 signal: _TeacherSignal | None, ps: torch.Tensor | None):
        self.model, self.config, self.lam, self.signal, self.ps = model, config, lam, signal, ps
        self.alpha = config.dro_alpha if ps is not None else 0.0
        self.consistency = config.use_consistency and config.gamma_consistency > 0
        # The consistency weight only asks which items are in the student's top-K, without
        # gradient; in bf16 that costs a third of the fp32 scorer pass (SPEC §4, w_o).
        self.topk_dtype = model.item_embedding.dtype

    def _scores_for_top_k(self, state: torch.Tensor) -> torch.Tensor:
        scorer, dtype = self.model.scorer, self.topk_dtype
        return torch.addmm(scorer.bias.to(dtype), state.to(dtype), scorer.weight.to(dtype).T)

    def __call__(self, idx, seq, len_seq, target, negative) -> torch.Tensor:
        config, signal = self.config, self.signal
        state = self.model.state(seq, len_seq)
        columns = [target.unsqueeze(1), negative.unsqueeze(1)]
        if signal is not None:
            candidates = signal.candidates[idx]
            columns.append(candidates)
        columns = torch.cat(columns, 1)
        logits = None
        if self.alpha > 0:
            logits = self.model.scorer(state)
            picked = logits.gather(1, columns)
        else:
            picked = self.model.score_items(state, columns)
        loss = bce_loss(picked[:, 0], picked[:, 1])
        dro = None
        if self.alpha > 0:
            # the target and the teacher's candidates share one DRO pass over the catalogue
            positives = columns[:, [0] + list(range(2, columns.shape[1]))]
            dro = dro_loss(logits, positives, self.ps, config.dro_beta)
            loss = loss + self.alpha * dro[:, 0].mean()
        if signal is None:
            return loss
        student_logits = None
        if self.consistency:
            if logits is not None:
                student_logits = logits.detach()
            else:
                with torch.no_grad():
                    student_logits = self._scores_for_top_k(state)
        weights = candidate_weights(
            candidates, signal.distances[idx] if signal.distances is not None else None, student_logits,
            gamma_position=config.gamma_position, gamma_confidence=config.gamma_confidence,
            gamma_consistency=config.gamma_consistency, use_position=config.use_position,
            use_confidence=config.use_confidence, use_consistency=config.use_consistency,
            position_beta=config.position_beta)
        instance_weights = signal.instance_weights[idx] if signal.instance_weights is not None else None
        return loss + self.lam * ranking_distillation_loss(
            picked[:, 2:], picked[:, 1], weights, official_negative=config.official_negative,
            instance_weights=instance_weights, dro=dro[:, 1:] if dro is not None else None, alpha=self.alpha,
            dro_weighting=config.dro_weighting)


# --- run directories -----------------------------------------------------------------------------

def protocol(dataset: PreparedDataset, config: TrainConfig) -> dict:
    """What every reported number was measured under (SPEC §6: always stored with the numbers)."""
    return {
        "split": dataset.stats.get("split", "time"),
        "cutoffs": list(CUTOFFS),
        "ranking": "full (all items), ties count against the target",
        "selection": f"{config.selection} {SELECTION_METRIC}",
        "test_reported_at": f"best {config.selection} epoch",
        "seed": config.seed,
        "dataset_hash": dataset.content_hash,
    }


def save_run(result: TrainResult, dataset: PreparedDataset, out: str | Path, teacher=None) -> dict:
    """Write RUNDIR: metrics.json, config.json, model.safetensors (inference weights), items.json.

    The teacher term of a distilled student is folded into its item table, so the saved student
    needs no teacher at inference: a plain embedding lookup, as fast as the undistilled one.
    """
    model = result.model
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
             if not k.startswith("item_embedding.projector.")}
    with torch.no_grad():
        state["item_embedding.ids.weight"] = model.item_embedding.folded_weight().detach().cpu().contiguous()
    metrics = {
        "val": result.val,
        "test": result.test,
        "best_epoch": result.best_epoch,
        "lam": result.lam,
        "lam_auto": result.lam_auto,
        "distilled": result.distilled,
        "seconds": result.seconds,
        "protocol": protocol(dataset, result.config),
        "config": result.config.to_dict(),
        "teacher": {**teacher.meta["teacher"], "k": teacher.k, "dim": teacher.dim} if teacher is not None else None,
        "epochs": result.history,
    }
    with atomic_directory(out) as tmp:
        save_file(state, str(tmp / "model.safetensors"))
        write_json(tmp / "config.json", {"config": result.config.to_dict(), "num_items": dataset.num_items,
                                         "max_len": dataset.max_len, "dataset_hash": dataset.content_hash,
                                         "format_version": 1})
        write_json(tmp / "items.json", {"ids": dataset.item_ids, "titles": dataset.titles})
        write_json(tmp / "metrics.json", metrics)
    return metrics


@dataclass
class TrainedStudent:
    """A saved student loaded for inference: raw ids in, raw ids out."""

    model: SequentialRecommender
    config: TrainConfig
    item_ids: list[str]
    titles: list[str]
    max_len: int
    index: dict[str, int] = field(init=False)   # raw item id -> internal id, built once

    def __post_init__(self) -> None:
        self.index = {raw: i for i, raw in enumerate(self.item_ids)}

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "TrainedStudent":
        path = Path(path)
        meta = read_json(path / "config.json")
        items = read_json(path / "items.json")
        config = TrainConfig.from_options(meta["config"])
        model = build_student(config, meta["num_items"], meta["max_len"])
        try:
            state = load_file(str(path / "model.safetensors"))
        except Exception as exc:
            raise DistillError(f"{path / 'model.safetensors'}: cannot read ({exc})") from None
        model.load_state_dict(state)
        model.to(device).eval()
        return cls(model=model, config=config, item_ids=items["ids"], titles=items["titles"],
                   max_len=meta["max_len"])

    @torch.no_grad()
    def recommend(self, history: list[str], k: int = 10, exclude_history: bool = True) -> tuple[list[str], list[float]]:
        index = self.index
        unknown = [raw for raw in history if raw not in index]
        if unknown:
            raise DistillError(f"history item(s) {', '.join(map(repr, unknown[:5]))} are not in this run's "
                               f"catalogue of {len(self.item_ids)} items; use item ids as in the uploaded data")
        if not history:
            raise DistillError("history is empty; give at least one item id")
        if k < 1:
            raise DistillError(f"k={k}: must be at least 1")
        ids = [index[raw] for raw in history][-self.max_len:]
        pad = len(self.item_ids)
        device = next(self.model.parameters()).device
        seq = torch.tensor([ids + [pad] * (self.max_len - len(ids))], device=device)
        scores = self.model(seq, torch.tensor([len(ids)], device=device))[0]
        if exclude_history:
            scores[torch.tensor([index[raw] for raw in history], device=device)] = -torch.inf
        top = scores.topk(min(k, int(torch.isfinite(scores).sum())))
        return [self.item_ids[i] for i in top.indices.tolist()], top.values.tolist()
