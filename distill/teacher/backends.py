"""Generation backends for the BIGRec teacher: one interface, the same prompts, the same outputs.

A backend turns prompts into generated responses (beam search, the top beam) and texts into
base-model embeddings (last layer, last token, no adapter: docs/method.md §2.4).

- `hf`: transformers `generate` with beam search, left padding, batched; bf16 on a GPU that has
  it (fp16 otherwise), fp32 on a CPU. Runs anywhere transformers does. A cancel hook is asked
  before every batch and after every generation step (`CancelGeneration`), so a cancel lands
  within one step even when a batch of beam search takes tens of seconds.
- `vllm`: vLLM's offline `LLM` (`distill.teacher.vllm_backend`): `LLM.beam_search` with
  `BeamSearchParams`, the adapter through `LoRARequest`, and a second, pooling `LLM` with
  last-token pooling for the embeddings. Imported only when chosen. The cancel hook is asked
  before every generate and embed call (one block's prompts: vLLM batches them itself).
- `openai`: an OpenAI-compatible server (`distill.teacher.openai_backend`): `/v1/completions` for
  generation, `/v1/embeddings` or the local base model for grounding; cancel asked before every
  request.
"""

from __future__ import annotations

import contextlib

from pathlib import Path
from typing import Callable, Protocol

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from distill.config import resolve_device
from distill.errors import Cancelled, ConfigError, raise_if_cancelled
from distill.latency import device_name
from distill.teacher import llm
from distill.teacher.registry import BIGREC_BACKENDS as BACKENDS
from distill.teacher.registry import DTYPES


class Backend(Protocol):
    name: str
    tokenizer: object
    config: object

    def generate(self, prompts: list[str]) -> list[str]: ...

    def embed(self, texts: list[str]) -> torch.Tensor: ...

    def device(self) -> str: ...

    def close(self) -> None: ...


def torch_dtype(name: str, device: torch.device) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r}: choose one of {', '.join(DTYPES)}")
    if name == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def open_backend(name: str, model: Path, adapter: Path | None, *, beams: int, max_new_tokens: int,
                 batch: int, device: str = "auto", dtype: str = "auto", tensor_parallel: int = 1,
                 gpu_memory: float = 0.9, should_cancel: Callable[[], bool] | None = None,
                 server: dict | None = None) -> Backend:
    if name == "hf":
        return HFBackend(model, adapter, beams=beams, max_new_tokens=max_new_tokens, batch=batch,
                         device=device, dtype=dtype, should_cancel=should_cancel)
    if name == "vllm":
        from distill.teacher.vllm_backend import VLLMBackend
        return VLLMBackend(model, adapter, beams=beams, max_new_tokens=max_new_tokens, dtype=dtype,
                           tensor_parallel=tensor_parallel, gpu_memory=gpu_memory, should_cancel=should_cancel)
    if name == "openai":
        from distill.teacher.openai_backend import OpenAIBackend
        return OpenAIBackend(model, adapter, beams=beams, max_new_tokens=max_new_tokens, batch=batch, dtype=dtype,
                             should_cancel=should_cancel, **(server or {}))
    raise ConfigError(f"backend {name!r}: choose one of {', '.join(BACKENDS)}")


class CancelGeneration(StoppingCriteria):
    """Ends every beam of a `generate` call after the current step once `should_cancel()` says so;
    `fired` then tells the caller to throw the truncated output away and raise Cancelled."""

    def __init__(self, should_cancel: Callable[[], bool]) -> None:
        self.should_cancel = should_cancel
        self.fired = False

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.fired = self.fired or bool(self.should_cancel())
        return torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool, device=input_ids.device)


class HFBackend:
    name = "hf"

    def __init__(self, model: Path, adapter: Path | None, *, beams: int, max_new_tokens: int, batch: int,
                 device: str = "auto", dtype: str = "auto", should_cancel: Callable[[], bool] | None = None) -> None:
        self.config = llm.check_causal_lm(model)
        self._device = resolve_device(device)
        self.dtype = torch_dtype(dtype, self._device)
        self.tokenizer = llm.load_tokenizer(model)
        base = llm.load_causal_lm(model, self._device, self.dtype)
        if adapter is not None:
            from peft import PeftModel
            base = PeftModel.from_pretrained(base, str(adapter), is_trainable=False)
        self.model = base.eval()
        self.adapter = adapter
        self.beams, self.max_new_tokens, self.batch = beams, max_new_tokens, batch
        self.should_cancel = should_cancel

    def device(self) -> str:
        return device_name(self._device)

    @torch.no_grad()
    def generate(self, prompts: list[str]) -> list[str]:
        tok = self.tokenizer
        settings = GenerationConfig(num_beams=self.beams, num_return_sequences=1, do_sample=False,
                                    max_new_tokens=self.max_new_tokens, early_stopping=True,
                                    pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        texts = [""] * len(prompts)
        for rows in _length_batches(prompts, self.batch):
            raise_if_cancelled(self.should_cancel)
            enc = tok([prompts[i] for i in rows], padding=True, return_tensors="pt").to(self._device)
            cancel = CancelGeneration(self.should_cancel) if self.should_cancel is not None else None
            out = self.model.generate(**enc, generation_config=settings,
                                      stopping_criteria=StoppingCriteriaList([cancel] if cancel else []))
            if cancel is not None and cancel.fired:
                raise Cancelled("run cancelled")
            for i, text in zip(rows, tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)):
                texts[i] = text
        return texts

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        """Base-model last-layer state of each text's last token, float32 [len(texts), D]."""
        tok = self.tokenizer
        out = None
        context = self.model.disable_adapter() if self.adapter is not None else contextlib.nullcontext()
        with context:
            for rows in _length_batches(texts, self.batch * 4):
                raise_if_cancelled(self.should_cancel)
                enc = tok([texts[i] for i in rows], padding=True, return_tensors="pt").to(self._device)
                mask = enc["attention_mask"]
                # Left padding: positions count real tokens only, so a text embeds the same in any batch.
                positions = (mask.cumsum(-1) - 1).clamp_min(0)
                hidden = self.model(**enc, position_ids=positions, output_hidden_states=True,
                                    logits_to_keep=1).hidden_states[-1][:, -1].float()
                if out is None:
                    out = torch.empty(len(texts), hidden.shape[1])
                out[torch.as_tensor(rows)] = hidden.cpu()
        return out if out is not None else torch.empty(0, self.config.hidden_size)

    def close(self) -> None:
        self.model = None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()


def _length_batches(texts: list[str], size: int) -> list[list[int]]:
    """Indices in batches of similar length (less padding), in a fixed order."""
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    return [order[s:s + size] for s in range(0, len(order), size)]
