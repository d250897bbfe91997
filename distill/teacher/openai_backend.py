"""The `openai` generation backend: BIGRec's teacher on an OpenAI-compatible server (vLLM's
`vllm serve`, or any server with the same API), so the LLM runs where a team already serves it
(tensor and pipeline parallel, several nodes behind one URL) instead of inside a worker.

- Generation: `POST {url}/v1/completions` with a list of prompts per request, `temperature` 0.
  With `beams` > 1 it asks for beam search (`use_beam_search`, `n` = beams: vLLM's extra
  parameter) and takes each prompt's first choice; a server that refuses beam search is asked
  again greedily, and `decoding` records what was used ("beam_search" | "greedy").
- Grounding (docs/method.md §2.4): `grounding: "server"` embeds with `POST {embed_url or
  url}/v1/embeddings` (the base model served as a pooling model: `vllm serve MODEL --runner pooling`),
  `grounding: "local"` (the default) embeds with the base model loaded here, as the `hf` backend
  does. The local model directory (`model`) is always needed: its tokenizer fits the prompts to
  the context.
- `concurrency` requests in flight, `retries` with exponential backoff on a connection error, a
  timeout, a 429 or a 5xx; `timeout` seconds per request; `request_budget` requests at most per
  teacher run. The API key is read from the environment variable `api_key_env` (never stored in a
  config); an unset variable fails before any request, naming it.

A failure after the retries raises TeacherError with the URL and the error; blocks finished before
it stay checkpointed (`distill.teacher.bigrec`), so a rerun continues at the first missing block.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch

from distill.errors import TeacherError, raise_if_cancelled
from distill.teacher import llm

GROUNDINGS = ("local", "server")
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: Path, adapter: Path | None, *, url: str, served_model: str | None = None,
                 api_key_env: str | None = None, grounding: str = "local", embed_url: str | None = None,
                 embed_model: str | None = None, beams: int = 4, max_new_tokens: int = 32, batch: int = 16,
                 concurrency: int = 4, retries: int = 3, timeout: float = 120.0, request_budget: int | None = None,
                 dtype: str = "auto", should_cancel: Callable[[], bool] | None = None) -> None:
        if adapter is not None:
            raise TeacherError("the openai backend generates with the model the server serves: serve the adapter "
                               "there (`vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER`) and pass "
                               "served_model NAME instead of adapter")
        self.key = None
        if api_key_env:
            self.key = os.environ.get(api_key_env)
            if not self.key:
                raise TeacherError(f"api_key_env {api_key_env}: the environment variable is not set where the teacher "
                                   "runs (the worker); set it there, or drop api_key_env for a server without a key")
        self.config = llm.check_causal_lm(model)
        self.tokenizer = llm.load_tokenizer(model)
        self.url, self.served_model = url.rstrip("/"), served_model or Path(model).name
        self.embed_url = (embed_url or url).rstrip("/")
        self.embed_model = embed_model or self.served_model
        self.beams, self.max_new_tokens, self.batch = beams, max_new_tokens, batch
        self.concurrency, self.retries, self.timeout = concurrency, retries, timeout
        self.request_budget, self.requests = request_budget, 0
        self.should_cancel = should_cancel
        self.decoding = "beam_search" if beams > 1 else "greedy"
        self.lock = threading.Lock()
        self.local = None
        if grounding == "local":
            from distill.teacher.backends import HFBackend
            self.local = HFBackend(model, None, beams=1, max_new_tokens=1, batch=batch, device="auto", dtype=dtype,
                                   should_cancel=should_cancel)

    def device(self) -> str:
        return f"server {self.url} ({self.served_model}, {self.decoding})"

    # ------------------------------------------------------------------ requests

    def _post(self, base: str, path: str, body: dict) -> dict:
        """One JSON POST with retries; TeacherError naming the URL once they are spent."""
        with self.lock:
            if self.request_budget is not None and self.requests >= self.request_budget:
                raise TeacherError(f"request_budget {self.request_budget} spent: the teacher needs more requests to "
                                   f"{base}; raise request_budget (a rerun continues at the first missing block)")
            self.requests += 1
        url = base + path
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = json.dumps(body).encode()
        problem = ""
        for attempt in range(self.retries + 1):
            raise_if_cancelled(self.should_cancel)
            if attempt:
                time.sleep(min(30.0, 0.5 * 2 ** (attempt - 1)))
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=self.timeout) as answer:
                    return json.loads(answer.read().decode())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                if exc.code not in RETRY_STATUSES:
                    raise _Refused(url, exc.code, detail) from None
                problem = f"HTTP {exc.code}: {detail}"
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                problem = str(getattr(exc, "reason", exc))
            except json.JSONDecodeError:
                raise TeacherError(f"{url} answered something that is not JSON; is it an OpenAI-compatible "
                                   "server?") from None
        raise TeacherError(f"{url}: no answer after {self.retries + 1} attempts ({problem}); check that the server "
                           "is up and the url is right (a rerun continues at the first missing block)")

    def _map(self, function, chunks: list) -> list:
        if len(chunks) <= 1 or self.concurrency == 1:
            return [function(chunk) for chunk in chunks]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(function, chunks))

    # ------------------------------------------------------------------ generation

    def generate(self, prompts: list[str]) -> list[str]:
        raise_if_cancelled(self.should_cancel)
        chunks = [prompts[i:i + self.batch] for i in range(0, len(prompts), self.batch)]
        return [text for texts in self._map(self._complete, chunks) for text in texts]

    def _complete(self, prompts: list[str]) -> list[str]:
        body = {"model": self.served_model, "prompt": prompts, "max_tokens": self.max_new_tokens,
                "temperature": 0.0, "n": 1}
        if self.decoding == "beam_search":
            try:
                answer = self._post(self.url, "/v1/completions", {**body, "use_beam_search": True, "n": self.beams})
                return _first_choices(answer, len(prompts), self.beams, self.url)
            except _Refused as exc:
                if exc.code != 400:
                    raise
                self.decoding = "greedy"      # the server has no beam search: recorded in the teacher meta
        answer = self._post(self.url, "/v1/completions", body)
        return _first_choices(answer, len(prompts), 1, self.url)

    # ------------------------------------------------------------------ grounding

    def embed(self, texts: list[str]) -> torch.Tensor:
        if self.local is not None:
            return self.local.embed(texts)
        if not texts:
            return torch.empty(0, self.config.hidden_size)
        chunks = [texts[i:i + self.batch * 4] for i in range(0, len(texts), self.batch * 4)]
        return torch.cat(self._map(self._embed_chunk, chunks))

    def _embed_chunk(self, texts: list[str]) -> torch.Tensor:
        answer = self._post(self.embed_url, "/v1/embeddings", {"model": self.embed_model, "input": texts})
        rows = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(rows, list) or len(rows) != len(texts) or not all(
                isinstance(r, dict) and isinstance(r.get("embedding"), list) for r in rows):
            raise TeacherError(f"{self.embed_url}/v1/embeddings answered without data[].embedding for each of the "
                               f"{len(texts)} inputs; serve the base model as a pooling model (vllm serve MODEL "
                               "--runner pooling) or use grounding local")
        rows = sorted(rows, key=lambda r: r.get("index", 0))
        return torch.tensor([r["embedding"] for r in rows], dtype=torch.float32)

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
            self.local = None


class _Refused(TeacherError):
    """A 4xx the server will answer again the same way (no retry); a TeacherError with the URL."""

    def __init__(self, url: str, code: int, detail: str):
        super().__init__(f"{url} refused the request: HTTP {code}: {detail}")
        self.code = code


def _first_choices(answer, prompts: int, per_prompt: int, url: str) -> list[str]:
    """Each prompt's first choice's text from a completions answer (`n` = per_prompt choices each)."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or len(choices) < prompts or not all(
            isinstance(c, dict) and isinstance(c.get("text"), str) for c in choices):
        raise TeacherError(f"{url}/v1/completions answered without choices[].text for each of the {prompts} prompts; "
                           "is it an OpenAI-compatible completions server?")
    texts = [None] * prompts
    ordered = sorted(choices, key=lambda c: c.get("index", 0))
    for position, choice in enumerate(ordered):
        index = choice.get("index", position)
        prompt = index // per_prompt if len(ordered) == prompts * per_prompt else index
        if 0 <= prompt < prompts and texts[prompt] is None:
            texts[prompt] = choice["text"]
    if any(text is None for text in texts):
        raise TeacherError(f"{url}/v1/completions answered {len(choices)} choices that do not cover each of the "
                           f"{prompts} prompts")
    return texts
