import os

# Before torch loads MKL: bitwise-reproducible CPU kernels, as `import distill` sets for the CLI.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
