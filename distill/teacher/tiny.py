"""A tiny Llama-architecture causal LM built from scratch: no download, seconds on a CPU.

Tests, `scripts/gpu_smoke.sh` and `make test-vllm` use it to run the BIGRec path (fine-tune,
beam search, grounding) end to end where no real model can be fetched. Its byte-level BPE
tokenizer is trained with `tokenizers` on the prompt template and the given titles, so prompts
tokenize into few, meaningful pieces; its weights are random (seeded) until `finetune` trains it.
"""

from __future__ import annotations

from pathlib import Path

from distill.io import atomic_directory
from distill.teacher.prompts import ALPACA, PRESETS

SPECIAL = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}


def build_tiny_llm(out: str | Path, titles: list[str], seed: int = 0, hidden: int = 128, layers: int = 2,
                   heads: int = 2, vocab_size: int = 2000, context: int = 512) -> Path:
    """Write a LlamaForCausalLM (head size 64, which every attention backend supports) and its
    tokenizer to `out`, atomically. The same arguments give the same bytes."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [ALPACA] + [style.instruction for style in PRESETS.values()]
    corpus += [style.history(titles[i:i + 10]) + " " + style.response(titles[i])
               for style in PRESETS.values() for i in range(0, len(titles), 5)]
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    bos = tokenizer.token_to_id(SPECIAL["bos"])
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{SPECIAL['bos']} $A",
                                                             special_tokens=[(SPECIAL["bos"], bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=SPECIAL["bos"], eos_token=SPECIAL["eos"],
                                   pad_token=SPECIAL["pad"], unk_token=SPECIAL["unk"], model_max_length=context)

    config = LlamaConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=context, bos_token_id=bos,
                         eos_token_id=tokenizer.token_to_id(SPECIAL["eos"]),
                         pad_token_id=tokenizer.token_to_id(SPECIAL["pad"]), tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        fast.save_pretrained(tmp)
    return Path(out)
