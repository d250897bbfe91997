"""The `openai` backend's contract with a server, and its faults (docs/method.md §2.3): the happy
path against a real `vllm serve` is in tests/vllm; here a small local HTTP server plays the parts a
real one rarely does on cue: refusing beam search, answering without the needed field, being down."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from distill.errors import ConfigError, TeacherError
from distill.teacher.bigrec import BigRecOptions, bigrec_teacher
from distill.teacher.openai_backend import OpenAIBackend
from distill.teacher.registry import parse_teacher
from distill.teacher.tiny import build_tiny_llm

from factories import chain_dataset

from tests.factories import free_port


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("openai")
    dataset = chain_dataset(num_items=12, users=6, length=5, titles=[f"Film number {i}" for i in range(12)])
    build_tiny_llm(root / "tiny", dataset.titles)
    return dataset, root / "tiny"


class Server:
    """A local HTTP server answering /v1/completions with `answer(body) -> (status, json)`; it keeps
    every request body it got."""

    def __init__(self, answer):
        self.bodies, outer = [], self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append({"path": self.path, **body, "auth": self.headers.get("Authorization")})
                status, payload = answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(answer):
        servers.append(Server(answer))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


def texts(body, text="Film number 3"):
    prompts = body["prompt"]
    return 200, {"choices": [{"index": i, "text": f'"{text}"'} for i in range(len(prompts) * body.get("n", 1))]}


def backend(model, url, **options):
    _, path = model
    return OpenAIBackend(path, None, url=url, retries=options.pop("retries", 0), **options)


def test_beam_search_is_asked_for_and_each_prompts_first_beam_taken(model, serve):
    server = serve(lambda body: (200, {"choices": [{"index": i, "text": f"beam {i}"}
                                                   for i in range(len(body["prompt"]) * body["n"])]}))
    answers = backend(model, server.url, beams=3, batch=2).generate(["a", "b", "c"])
    assert answers == ["beam 0", "beam 3", "beam 0"]          # two requests: [a, b], [c]
    assert all(b["use_beam_search"] is True and b["n"] == 3 and b["temperature"] == 0 for b in server.bodies)


def test_a_server_without_beam_search_is_asked_greedily_and_that_is_recorded(model, serve):
    server = serve(lambda body: (400, {"error": "use_beam_search is not supported"}) if body.get("use_beam_search")
                   else texts(body))
    chosen = backend(model, server.url, beams=4)
    assert chosen.generate(["a"]) == ['"Film number 3"'] and chosen.decoding == "greedy"


def test_the_api_key_comes_from_the_named_environment_variable(model, serve, monkeypatch):
    server = serve(texts)
    monkeypatch.setenv("LLM_TEST_KEY", "secret-123")
    backend(model, server.url, api_key_env="LLM_TEST_KEY", beams=1).generate(["a"])
    assert server.bodies[0]["auth"] == "Bearer secret-123"


def test_an_unset_api_key_variable_fails_before_any_request_naming_it(model, serve, monkeypatch):
    server = serve(texts)
    monkeypatch.delenv("LLM_MISSING_KEY", raising=False)
    with pytest.raises(TeacherError, match="api_key_env LLM_MISSING_KEY: the environment variable is not set"):
        backend(model, server.url, api_key_env="LLM_MISSING_KEY")
    assert server.bodies == []


def test_an_answer_without_the_needed_field_is_refused_naming_it(model, serve):
    server = serve(lambda body: (200, {"result": "ok"}))
    with pytest.raises(TeacherError, match=r"answered without choices\[\]\.text"):
        backend(model, server.url, beams=1).generate(["a"])


def test_server_grounding_reads_the_embeddings_endpoint(model, serve):
    server = serve(lambda body: (200, {"data": [{"index": i, "embedding": [float(i), 1.0]}
                                                for i in range(len(body["input"]))]}))
    vectors = backend(model, server.url, grounding="server", embed_model="pool").embed(["x", "y", "z"])
    assert vectors.tolist() == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]
    assert server.bodies[0]["path"] == "/v1/embeddings" and server.bodies[0]["model"] == "pool"


def test_busy_answers_are_retried_and_the_request_budget_is_enforced(model, serve):
    answers = iter([(503, {"error": "busy"}), (429, {"error": "slow down"})])
    server = serve(lambda body: next(answers, None) or texts(body))
    chosen = backend(model, server.url, beams=1, retries=2, request_budget=2)
    assert chosen.generate(["a"]) == ['"Film number 3"'] and len(server.bodies) == 3
    chosen.generate(["b"])
    with pytest.raises(TeacherError, match="request_budget 2 spent"):
        chosen.generate(["c"])


def test_an_unreachable_server_fails_the_teacher_naming_the_url_and_writes_nothing(model, tmp_path):
    dataset, path = model
    url = f"http://127.0.0.1:{free_port()}"
    options = BigRecOptions(backend="openai", url=url, retries=1, k=3, block=8, latency_requests=0)
    with pytest.raises(TeacherError, match=f"{url}/v1/completions: no answer after 2 attempts"):
        bigrec_teacher(dataset, tmp_path / "out", path, None, options, cache=tmp_path / "cache")
    assert not (tmp_path / "out").exists() and not list((tmp_path / "cache").glob("*/artifacts"))


@pytest.mark.parametrize("spec,fragment", [
    ({"kind": "bigrec", "backend": "openai"}, "backend openai needs url"),
    ({"kind": "bigrec", "backend": "hf", "url": "http://x:1"}, "are for backend openai, not hf"),
    ({"kind": "bigrec", "backend": "openai", "url": "file:///etc/passwd"}, "is not an http(s) URL"),
    ({"kind": "bigrec", "backend": "openai", "url": "http://x:1", "api_key_env": "sk-123"}, "must name an environment"),
    ({"kind": "bigrec", "backend": "openai", "url": "http://x:1", "concurrency": 0}, "out of range: 1..64"),
])
def test_bad_server_options_are_refused_at_parse(spec, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_teacher(spec)
