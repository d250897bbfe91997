"""The training loss of one batch (docs/method.md §3-§5): BCE (+ DRO) (+ lambda_d * ranking distillation),
and the parts of the teacher it reads, as tensors on the training device."""

from __future__ import annotations

import numpy as np
import torch

from distill.config import TrainConfig
from distill.errors import ConfigError, TeacherError
from distill.losses import (bce_loss, candidate_weights, dro_loss, instance_confidence,
                            ranking_distillation_loss)
from distill.students import SequentialRecommender


class TeacherSignal:
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
        # With a teacher budget (docs/method.md §2.6) only the ranked rows are distilled.
        ranked = teacher.ranked_rows("train")
        self.ranked = None if ranked is None else torch.as_tensor(ranked, dtype=torch.bool, device=device)
        if self.ranked is not None and config.dro_weighting == "official" and config.student == "dros":
            raise ConfigError("dro_weighting=official averages the DRO term over every instance of a batch, which "
                              "a teacher budget leaves unranked; use dro_weighting=instance with a budgeted teacher")
        if config.confidence == "candidate":
            dist = teacher.distances["train"][:, :k]
            self.distances = torch.as_tensor(np.ascontiguousarray(dist), dtype=torch.float32, device=device)
        else:
            target = teacher.target_distances.get("train")
            if target is None:
                raise ConfigError("confidence=paper needs the teacher's distance from its answer to each true "
                                  "next item (train_target_dist in ranks.safetensors), which this teacher did not "
                                  "write (the reference code's files have none); use confidence=candidate")
            target = torch.as_tensor(target, dtype=torch.float32, device=device)
            if self.ranked is not None:     # unranked rows hold zeros: the minimum is taken over ranked rows
                target = torch.where(self.ranked, target, target[self.ranked].min())
            self.instance_weights = instance_confidence(target, config.confidence_beta)

    def batch_weights(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Per-instance weights of the ranking term for the batch rows `idx`: the confidence of
        `confidence=paper`, times, with a budget, ranked / (share of the batch ranked), so that the
        term is the mean over the batch's ranked instances and its scale does not depend on the
        budget (0 for a batch without any)."""
        weights = self.instance_weights[idx] if self.instance_weights is not None else None
        if self.ranked is None:
            return weights
        ranked = self.ranked[idx].to(torch.float32)
        scale = ranked * (len(idx) / ranked.sum().clamp(min=1))
        return scale if weights is None else weights * scale


class Objective:
    """The training loss of one batch: BCE (+ DRO) (+ lambda_d * ranking distillation), docs/method.md §3-§4.

    Only the scores the losses need are computed with gradient (target, negative, K candidates);
    the full [B, num_items] score matrix is built with gradient only when DRO needs it, and
    without gradient when only the consistency weight needs the student's top-K.
    """

    def __init__(self, model: SequentialRecommender, config: TrainConfig, lam: float,
                 signal: TeacherSignal | None, ps: torch.Tensor | None):
        self.model, self.config, self.lam, self.signal, self.ps = model, config, lam, signal, ps
        self.alpha = config.dro_alpha if ps is not None else 0.0
        self.consistency = config.use_consistency and config.gamma_consistency > 0
        # The consistency weight only asks which items are in the student's top-K, without
        # gradient; in bf16 that costs a third of the fp32 scorer pass (docs/method.md §4, w_o).
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
        instance_weights = signal.batch_weights(idx)
        return loss + self.lam * ranking_distillation_loss(
            picked[:, 2:], picked[:, 1], weights, official_negative=config.official_negative,
            instance_weights=instance_weights, dro=dro[:, 1:] if dro is not None else None, alpha=self.alpha,
            dro_weighting=config.dro_weighting)
