"""`teacher finetune`: BIGRec's LoRA fine-tuning of a causal LM on prompts (docs/method.md §2.1).

A seeded sample of training instances (1,024 by default, as BIGRec) becomes prompt + quoted next
title + eos; the loss covers the response only. LoRA r=8, alpha=16, dropout 0.05 on q_proj and
v_proj, AdamW at lr 1e-4; after every epoch the loss on a sample of validation instances decides
early stopping, and the best epoch's adapter is the one written. The output directory is a peft
adapter (safetensors) plus `finetune.json`: the settings, the base model and its fingerprint, the
prompt style and the loss curve, which `teacher bigrec --adapter` reads.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from distill.config import resolve_device
from distill.data.dataset import PreparedDataset
from distill.errors import ConfigError, TeacherError
from distill.io import atomic_directory, write_json
from distill.teacher import llm
from distill.teacher.prompts import instance_prompts, prompt_style, token_budget

RESPONSE_TOKENS = 64  # room kept for the response when a long history is cut to fit the context


@dataclass
class FinetuneOptions:
    sample: int = 1024
    val_sample: int = 128
    epochs: int = 3
    patience: int = 1
    batch: int = 8
    lr: float = 1e-4
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    style: str = "neutral"
    template: str | None = None
    max_length: int = 1024
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("sample", "val_sample", "epochs", "batch", "r", "alpha", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"finetune {name} must be at least 1, got {getattr(self, name)}")
        if self.patience < 0 or not 0 <= self.dropout < 1 or not self.lr > 0:
            raise ConfigError("finetune: patience >= 0, 0 <= dropout < 1 and lr > 0 are required")
        prompt_style(self.style, self.template)  # validates the style and template


def finetune(dataset: PreparedDataset, out: str | Path, model: str | Path | None = None,
             options: FinetuneOptions | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Fine-tune LoRA on `dataset`'s prompts and write the adapter to `out`; returns the record."""
    from peft import LoraConfig, get_peft_model
    options = options or FinetuneOptions()
    log = log or (lambda message: None)
    path = llm.resolve_model(model)
    config = llm.check_causal_lm(path)
    device = resolve_device(options.device)
    tokenizer = llm.load_tokenizer(path)
    base = llm.load_causal_lm(path, device, torch.float32)
    linear = {name.rsplit(".", 1)[-1] for name, module in base.named_modules() if isinstance(module, torch.nn.Linear)}
    missing = [t for t in options.targets if t not in linear]
    if missing:
        raise ConfigError(f"{path}: LoRA target modules {missing} are not in this model; its linear layers are "
                          f"{sorted(linear)}")
    torch.manual_seed(options.seed)
    model_ = get_peft_model(base, LoraConfig(r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout,
                                             target_modules=list(options.targets), task_type="CAUSAL_LM"))
    style = prompt_style(options.style, options.template)
    budget = min(llm.context_length(config, tokenizer), options.max_length)
    rng = np.random.default_rng(options.seed)
    train = _examples(dataset, "train", options.sample, rng, style, tokenizer, budget)
    val = _examples(dataset, "val", options.val_sample, rng, style, tokenizer, budget)
    if not val:
        val = train[: max(1, len(train) // 10)]
    log(f"finetune: {len(train):,} training and {len(val):,} validation prompts, LoRA r={options.r} on "
        f"{', '.join(options.targets)}, {sum(p.numel() for p in model_.parameters() if p.requires_grad):,} trainable "
        f"parameters, {device}")

    trainable = [p for p in model_.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=options.lr)
    pad = tokenizer.pad_token_id
    history, best, best_state, stale = [], math.inf, None, 0
    initial = _loss(model_, val, options.batch, pad, device)
    log(f"finetune: val loss before training {initial:.4f}")
    started = time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        model_.train()
        order = rng.permutation(len(train))
        losses = []
        for start in range(0, len(order), options.batch):
            batch = _collate([train[i] for i in order[start:start + options.batch]], pad, device)
            loss = model_(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        val_loss = _loss(model_, val, options.batch, pad, device)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "seconds": time.perf_counter() - started})
        log(f"finetune epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, val loss {val_loss:.4f}")
        if val_loss < best:
            best, stale = val_loss, 0
            best_state = {n: p.detach().clone() for n, p in model_.named_parameters() if p.requires_grad}
        else:
            stale += 1
            if stale > options.patience:
                log(f"finetune: val loss has not improved for {stale} epochs, stopping")
                break
    with torch.no_grad():
        for name, parameter in model_.named_parameters():
            if name in best_state:
                parameter.copy_(best_state[name])
    record = {"base_model": str(path), "base_fingerprint": llm.fingerprint(path), "dataset_hash": dataset.content_hash,
              "options": asdict(options), "history": history, "initial_val_loss": initial, "best_val_loss": best,
              "best_epoch": min(history, key=lambda h: h["val_loss"])["epoch"],
              "train_prompts": len(train), "val_prompts": len(val), "pad_token_fixed": tokenizer.pad_fixed}
    with atomic_directory(out) as tmp:
        model_.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "finetune.json", record)
    return record


def _examples(dataset, split_name, count, rng, style, tokenizer, budget) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) for a seeded sample of a split's instances; labels skip the prompt."""
    split = dataset.split(split_name)
    if len(split) == 0:
        return []
    rows = np.sort(rng.choice(len(split), size=min(count, len(split)), replace=False))
    prompts = instance_prompts(dataset.titles, split.seq[rows], split.len_seq[rows], style,
                               token_budget(tokenizer, budget - RESPONSE_TOKENS))
    examples = []
    for prompt, target in zip(prompts, split.next[rows].tolist()):
        prompt_ids = tokenizer(prompt).input_ids
        response = tokenizer(style.response(dataset.titles[target]), add_special_tokens=False).input_ids
        if tokenizer.eos_token_id is None:
            raise TeacherError("the tokenizer has no eos token, so the model could not learn where a title ends; "
                               "set tokenizer.eos_token and save it again")
        ids = (prompt_ids + response + [tokenizer.eos_token_id])[:budget]
        examples.append((ids, len(prompt_ids)))
    return examples


def _collate(examples, pad: int, device) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels (-100 on the prompt and the padding)."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(examples):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
        labels[row, prompt_length:len(ids)] = torch.tensor(ids[prompt_length:])
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


@torch.no_grad()
def _loss(model, examples, batch: int, pad: int, device) -> float:
    """Mean response-token loss over `examples`."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch):
        inputs = _collate(examples[start:start + batch], pad, device)
        count = int((inputs["labels"][:, 1:] != -100).sum())
        total += float(model(**inputs).loss) * count
        tokens += count
    return total / max(tokens, 1)
