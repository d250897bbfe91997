"""`make bench-generation` (`python bench/generation_bench.py --ml100k DIR`): BIGRec generation speed
on the CPU, today's settings against the faster ones, same model, same instances, one process.

SmolLM2-135M-Instruct (the offline default) writes the next title for the first N ML-100k training
instances (the `movies` prompt) with the `hf` backend in each configuration, timed end to end
(prompt building, generation, grounding's embedding of the answers): instances/s, and how often the
configuration's answer equals the beam-4 fp32 answer. Prints a table and writes JSON to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from common import prepared_ml100k, write_result  # noqa: E402

CONFIGS = [  # (label, beams, dtype, batch)
    ("beam 4, fp32, batch 16 (today's default)", 4, "fp32", 16),
    ("greedy, fp32, batch 16", 1, "fp32", 16),
    ("greedy, bf16, batch 16", 1, "bf16", 16),
    ("greedy, bf16, batch 64", 1, "bf16", 64),
    ("beam 4, bf16, batch 16", 4, "bf16", 16),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ml100k", default=str(ROOT.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--instances", type=int, default=64)
    parser.add_argument("--out", default="bench-out/generation.json")
    args = parser.parse_args()

    import torch

    from distill.teacher import llm
    from distill.teacher.backends import HFBackend
    from distill.teacher.prompts import clean_generation, instance_prompts, prompt_style, token_budget

    work, dataset = prepared_ml100k(args.ml100k, "generation-bench-")
    model = llm.resolve_model(None)
    n = args.instances
    rows = []
    reference = None
    for label, beams, dtype, batch in CONFIGS:
        backend = HFBackend(model, None, beams=beams, max_new_tokens=32, batch=batch, device="cpu", dtype=dtype)
        fits = token_budget(backend.tokenizer, llm.context_length(backend.config, backend.tokenizer) - 32)
        backend.generate(instance_prompts(dataset.titles, dataset.train.seq[:2], dataset.train.len_seq[:2],
                                          prompt_style("movies"), fits))          # warm-up
        started = time.perf_counter()
        prompts = instance_prompts(dataset.titles, dataset.train.seq[:n], dataset.train.len_seq[:n],
                                   prompt_style("movies"), fits)
        answers = [clean_generation(text) for text in backend.generate(prompts)]
        backend.embed([a or '""' for a in answers])
        seconds = time.perf_counter() - started
        if reference is None:
            reference = answers
        rows.append({"config": label, "beams": beams, "dtype": dtype, "batch": batch, "instances": n,
                     "seconds": round(seconds, 2), "instances_per_s": n / seconds,
                     "same_answer_as_default": sum(a == b for a, b in zip(answers, reference)) / n,
                     "threads": torch.get_num_threads()})
        backend.close()
    base = rows[0]["instances_per_s"]
    print(f"\nSmolLM2-135M-Instruct, hf backend, {n} ML-100k training instances, {rows[0]['threads']} threads")
    print(f"{'configuration':<44} {'inst/s':>7} {'speed-up':>8} {'same answer':>11}")
    for row in rows:
        row["speedup"] = row["instances_per_s"] / base
        print(f"{row['config']:<44} {row['instances_per_s']:>7.2f} {row['speedup']:>7.1f}x "
              f"{row['same_answer_as_default']:>10.0%}")
    write_result(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
