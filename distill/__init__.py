"""DLLM2Rec: distil an LLM recommender into a fast sequential recommender.

The method (Cui et al., RecSys 2024) as a library with no web framework in it:
`distill.data` prepares interaction data, `distill.students` holds the sequential
models, `distill.losses` and `distill.embedding` the two distillation terms,
`distill.train` and `distill.evaluate` the protocol, `python -m distill` the command line.
"""

import os

# Bitwise-reproducible training on CPU: MKL otherwise picks kernels by memory alignment, so the
# same seed could give results that differ in the last bits from one process state to another.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
