"""`export`: a trained run as ONNX or TorchScript that answers as the torch student, with its items,
model card and a standalone serve.py; a model that does not answer the same is never written."""

import ast
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

import distill.export
from distill.errors import ConfigError
from distill.export import EXPORT_FORMATS, ExportError, export_run
from distill.inference import TrainedStudent
from distill.recipe import ensure_student, ensure_teacher, student_config

from factories import chain_dataset

TINY = {"epochs": 1, "hidden": 16}
STUDENTS = ("gru4rec", "sasrec", "dros", "caser")
K = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A prepared dataset at root/data, one tiny run per student at root/<student> (and a distilled
    SASRec at root/distilled), each exported once to both formats at root/export/<run>-<format>."""
    root = tmp_path_factory.mktemp("export")
    dataset = chain_dataset(num_items=30, users=40)
    (root / "data").mkdir()
    dataset.save(root / "data")
    dataset.path = root / "data"
    for student in STUDENTS:
        ensure_student(dataset, student_config(student, TINY, {}, distilled=False), None, root / student)
    teacher = ensure_teacher(dataset, {"kind": "titles", "k": 10}, root / "teacher")
    ensure_student(dataset, student_config("sasrec", TINY, {"lam": "0.5"}, distilled=True), teacher,
                   root / "distilled")
    cards = {}
    for run in (*STUDENTS, "distilled"):
        for fmt in EXPORT_FORMATS:
            cards[run, fmt] = export_run(root / run, dataset, fmt, root / "export" / f"{run}-{fmt}", k=K,
                                         name="chain", requests=20)
    return dataset, root, cards


def torch_top(run_dir, seq, len_seq, exclude, k=K):
    """The torch student's top-k with `exclude` scored -inf (what `recommend` does with the history)."""
    student = TrainedStudent.load(run_dir)
    with torch.no_grad():
        scores = student.model(torch.from_numpy(seq), torch.from_numpy(len_seq))
    scores = torch.cat([scores, torch.zeros_like(scores[:, :1])], 1).scatter(1, torch.from_numpy(exclude), -math.inf)
    top = scores[:, :-1].topk(k, dim=1)
    return top.indices.numpy(), top.values.numpy()


def test_every_student_in_onnx_answers_the_test_histories_as_torch(world):
    dataset, root, _ = world
    seq, len_seq = dataset.test.seq.astype(np.int64), dataset.test.len_seq.astype(np.int64)
    for run in (*STUDENTS, "distilled"):
        session = onnxruntime.InferenceSession(str(root / "export" / f"{run}-onnx" / "model.onnx"))
        ids, scores = session.run(["ids", "scores"], {"seq": seq, "len_seq": len_seq, "exclude": seq})
        want_ids, want_scores = torch_top(root / run, seq, len_seq, seq)
        assert ids.shape == (len(dataset.test), K), run
        np.testing.assert_array_equal(ids, want_ids, err_msg=run)
        np.testing.assert_allclose(scores, want_scores, atol=1e-4, err_msg=run)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_every_student_in_torchscript_answers_the_test_histories_as_torch(world):
    dataset, root, _ = world
    seq, len_seq = dataset.test.seq.astype(np.int64), dataset.test.len_seq.astype(np.int64)
    for run in (*STUDENTS, "distilled"):
        module = torch.jit.load(str(root / "export" / f"{run}-torchscript" / "model.pt"))
        with torch.no_grad():
            ids, scores = module(torch.from_numpy(seq), torch.from_numpy(len_seq), torch.from_numpy(seq))
        want_ids, want_scores = torch_top(root / run, seq, len_seq, seq)
        np.testing.assert_array_equal(ids.numpy(), want_ids, err_msg=run)
        np.testing.assert_allclose(scores.numpy(), want_scores, atol=1e-4, err_msg=run)


def test_the_batch_and_the_exclusion_width_are_dynamic(world):
    dataset, root, _ = world
    session = onnxruntime.InferenceSession(str(root / "export" / "sasrec-onnx" / "model.onnx"))
    seq, len_seq = dataset.test.seq[:1].astype(np.int64), dataset.test.len_seq[:1].astype(np.int64)
    for exclude in (np.full((1, 1), dataset.pad_id), seq[:, :3], np.concatenate([seq, seq], 1)):
        exclude = exclude.astype(np.int64)
        ids, scores = session.run(None, {"seq": seq, "len_seq": len_seq, "exclude": exclude})
        want_ids, want_scores = torch_top(root / "sasrec", seq, len_seq, exclude)
        np.testing.assert_array_equal(ids, want_ids)
        assert not set(ids[0].tolist()) & (set(exclude[0].tolist()) - {dataset.pad_id})


def test_excluding_only_padding_answers_as_recommend_with_the_history_included(world):
    dataset, root, _ = world
    session = onnxruntime.InferenceSession(str(root / "export" / "gru4rec-onnx" / "model.onnx"))
    student = TrainedStudent.load(root / "gru4rec")
    history = ["3", "4", "5"]
    seq = np.full((1, dataset.max_len), dataset.pad_id, dtype=np.int64)
    seq[0, :3] = [student.index[i] for i in history]
    ids, scores = session.run(None, {"seq": seq, "len_seq": np.array([3]), "exclude": np.array([[dataset.pad_id]])})
    items, want = student.recommend(history, K, exclude_history=False)
    assert [student.item_ids[i] for i in ids[0]] == items
    np.testing.assert_allclose(scores[0], want, atol=1e-4)


def test_the_card_describes_dataset_student_teacher_protocol_metrics_interface_and_latency(world):
    dataset, root, cards = world
    card = cards["distilled", "onnx"]
    assert json.loads((root / "export" / "distilled-onnx" / "model_card.json").read_text()) == card
    metrics = json.loads((root / "distilled" / "metrics.json").read_text())
    assert card["dataset"] == {"name": "chain", "content_hash": dataset.content_hash, "users": 40, "items": 30,
                               "interactions": dataset.stats["interactions"], "instances": dataset.stats["instances"],
                               "split": "time", "max_len": dataset.max_len}
    assert card["student"]["type"] == "sasrec" and card["student"]["config"] == metrics["config"]
    assert card["teacher"]["kind"] == "titles" and card["distilled"] is True
    assert card["protocol"] == metrics["protocol"]
    assert card["metrics"]["val"] == metrics["val"] and card["metrics"]["test"] == metrics["test"]
    assert card["metrics"]["uncertainty"] is None
    interface = card["interface"]
    assert interface["k"] == K and interface["opset"] == distill.export.OPSET and interface["file"] == "model.onnx"
    assert [i["name"] for i in interface["inputs"]] == ["seq", "len_seq", "exclude"]
    assert [o["name"] for o in interface["outputs"]] == ["ids", "scores"]
    assert interface["pad_id"] == interface["num_items"] == 30
    assert card["check"]["histories"] == len(dataset.test) and card["check"]["max_abs_score_diff"] <= 1e-4
    for runtime in ("torch", "onnxruntime"):
        assert 0 < card["latency"][runtime]["p50_ms"] <= card["latency"][runtime]["p95_ms"]
        assert card["latency"][runtime]["throughput"] > 0
    assert card["studio_version"] and card["created"].endswith("+00:00")
    assert cards["gru4rec", "torchscript"]["interface"]["opset"] is None
    assert "torchscript" in cards["gru4rec", "torchscript"]["latency"]
    assert cards["gru4rec", "onnx"]["teacher"] is None
    text = (root / "export" / "distilled-onnx" / "model_card.md").read_text()
    assert "ONNX opset" in text and dataset.content_hash in text and "onnxruntime" in text


def test_items_json_maps_each_index_to_its_id_and_title(world):
    dataset, root, _ = world
    items = json.loads((root / "export" / "caser-onnx" / "items.json").read_text())
    assert items == {"ids": dataset.item_ids, "titles": dataset.titles}


def test_a_seeds_summary_puts_intervals_in_the_card(world, tmp_path):
    dataset, root, _ = world
    summary = {"uncertainty": {"test": {"hr@10": {"mean": 0.3, "std": 0.01, "ci95": [0.28, 0.32], "n": 3}}},
               "seeds": [0, 1, 2]}
    card = export_run(root / "caser", dataset, "torchscript", tmp_path / "out", uncertainty=summary, requests=5)
    assert card["metrics"]["uncertainty"] == summary["uncertainty"]
    assert "95% CI 0.2800-0.3200" in (tmp_path / "out" / "model_card.md").read_text()


def test_serve_py_imports_only_the_standard_library_numpy_and_onnxruntime(world):
    _, root, _ = world
    tree = ast.parse((root / "export" / "sasrec-onnx" / "serve.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"numpy", "onnxruntime"}


def serve(directory, *args, block=("distill", "torch")):
    """Run serve.py in an isolated interpreter where importing any of `block` fails."""
    code = (f"import runpy, sys; sys.modules.update(dict.fromkeys({list(block)!r})); "
            f"sys.argv = ['serve.py', *sys.argv[1:]]; runpy.run_path({str(directory / 'serve.py')!r}, "
            "run_name='__main__')")
    return subprocess.run([sys.executable, "-I", "-c", code, *map(str, args)], capture_output=True, text=True,
                          cwd=directory)


def test_serve_py_answers_as_recommend_without_the_studio_or_torch(world):
    dataset, root, _ = world
    student = TrainedStudent.load(root / "dros")
    long_history = [str(i % 30) for i in range(3, 3 + 2 * dataset.max_len)]   # longer than L: cut from the left
    for history, k in ((["1", "2", "3"], 5), (["7"], K), (long_history, 10)):
        proc = serve(root / "export" / "dros-onnx", "--history", ",".join(history), "--k", k)
        assert proc.returncode == 0, proc.stderr
        answer = json.loads(proc.stdout)
        items, scores = student.recommend(history, k)
        assert answer["items"] == items
        np.testing.assert_allclose(answer["scores"], scores, atol=1e-4)
        assert answer["titles"] == [student.titles[student.index[i]] for i in items]


def test_serve_py_of_a_torchscript_export_answers_as_recommend(world):
    _, root, _ = world
    student = TrainedStudent.load(root / "caser")
    proc = serve(root / "export" / "caser-torchscript", "--history", "4,5,6", "--k", 5, block=("distill",))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"] == student.recommend(["4", "5", "6"], 5)[0]


@pytest.mark.parametrize("args,fragment", [(("--history", "1,nope,zilch"), "'nope', 'zilch'"),
                                           (("--history", " , "), "empty"),
                                           (("--history", "1", "--k", K + 1), f"1 to {K}")])
def test_serve_py_refuses_bad_requests_with_exit_2(world, args, fragment):
    _, root, _ = world
    proc = serve(root / "export" / "gru4rec-onnx", *args)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_an_export_that_answers_differently_fails_naming_the_history(world, tmp_path, monkeypatch, fmt):
    dataset, root, _ = world
    forward = distill.export.ExportedRecommender.forward

    def perturbed(self, seq, len_seq, exclude):
        ids, scores = forward(self, seq, len_seq, exclude)
        return ids, scores + 1e-3

    monkeypatch.setattr(distill.export.ExportedRecommender, "forward", perturbed)
    out = tmp_path / "out"
    history = ", ".join(dataset.item_ids[i] for i in dataset.test.seq[0, :dataset.test.len_seq[0]])
    with pytest.raises(ExportError, match=f"row 0 \\(items {history}\\): scores differ"):
        export_run(root / "sasrec", dataset, fmt, out, requests=5)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_wrong_ranking_is_reported_with_both_lists(world, tmp_path, monkeypatch):
    dataset, root, _ = world
    forward = distill.export.ExportedRecommender.forward
    monkeypatch.setattr(distill.export.ExportedRecommender, "forward",
                        lambda self, *a: (lambda ids, scores: (ids.flip(1), scores))(*forward(self, *a)))
    with pytest.raises(ExportError, match="row 0 .*top ids .* where the torch student answers"):
        export_run(root / "gru4rec", dataset, "torchscript", tmp_path / "out", requests=5)


def test_a_failed_export_keeps_the_previous_directory(world, tmp_path, monkeypatch):
    dataset, root, _ = world
    out = tmp_path / "out"
    shutil.copytree(root / "export" / "gru4rec-onnx", out)
    before = sorted(p.name for p in out.iterdir())
    monkeypatch.setattr(distill.export, "CHECK_TOLERANCE", -1.0)
    with pytest.raises(ExportError):
        export_run(root / "gru4rec", dataset, "onnx", out, requests=5)
    assert sorted(p.name for p in out.iterdir()) == before
    assert json.loads((out / "model_card.json").read_text())["student"]["type"] == "gru4rec"


def test_an_unknown_format_is_refused_with_the_formats(world, tmp_path):
    dataset, root, _ = world
    with pytest.raises(ConfigError, match="'tflite' is unknown; choose one of onnx, torchscript"):
        export_run(root / "sasrec", dataset, "tflite", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_student_type_that_cannot_be_exported_is_refused(world, tmp_path):
    dataset, root, _ = world
    run = tmp_path / "run"
    shutil.copytree(root / "sasrec", run)
    meta = json.loads((run / "config.json").read_text())
    meta["config"]["student"] = "bert4rec"
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="'bert4rec' cannot be exported; exportable students: gru4rec, sasrec"):
        export_run(run, dataset, "onnx", tmp_path / "out")


def test_a_dataset_the_run_was_not_trained_on_is_refused(world, tmp_path):
    _, root, _ = world
    with pytest.raises(ExportError, match="give the prepared dataset the run was trained on"):
        export_run(root / "sasrec", chain_dataset(num_items=30, users=40, seed=1), "onnx", tmp_path / "out")


def test_out_may_not_replace_the_run(world):
    dataset, root, _ = world
    with pytest.raises(ConfigError, match="would replace the run directory"):
        export_run(root / "sasrec", dataset, "onnx", root / "sasrec")
    assert (root / "sasrec" / "model.safetensors").is_file()


def cli(*args):
    return subprocess.run([sys.executable, "-m", "distill", "export", *map(str, args)], capture_output=True,
                          text=True)


def test_cli_exports_finding_the_dataset_beside_the_run(world, tmp_path):
    _, root, _ = world
    proc = cli("--run", root / "gru4rec", "--format", "onnx", "--out", tmp_path / "out", "--k", 5)
    assert proc.returncode == 0, proc.stderr
    assert "checked on" in proc.stdout and "wrote" in proc.stdout
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert card["interface"]["k"] == 5 and (tmp_path / "out" / "serve.py").is_file()


@pytest.mark.parametrize("extra,fragment", [(("--format", "tflite", "--data", "DATA"), "choose one of onnx, torchscript"),
                                            (("--format", "onnx"), "give --data DIR")])
def test_cli_refuses_with_exit_2_and_one_line(world, tmp_path, extra, fragment):
    _, root, _ = world
    run = tmp_path / "run"
    shutil.copytree(root / "sasrec", run)                      # no data/ beside this copy
    out = tmp_path / "out"
    proc = cli("--run", run, "--out", out, *[str(root / "data") if a == "DATA" else a for a in extra])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and fragment in proc.stderr and proc.stderr.count("\n") == 1
    assert not out.exists()


@pytest.mark.venv
def test_serve_py_runs_in_a_fresh_venv_with_only_numpy_and_onnxruntime(world, tmp_path):
    """The promise to a team taking the student out: a new virtual environment, `pip install numpy
    onnxruntime` (the versions tested here), and serve.py answers as the studio's student does."""
    from importlib import metadata
    dataset, root, _ = world
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              f"numpy=={metadata.version('numpy')}", f"onnxruntime=={metadata.version('onnxruntime')}"],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    listed = subprocess.run([str(python), "-c", "import importlib.util as u; print([m for m in ('torch', 'distill', "
                             "'django') if u.find_spec(m)])"], capture_output=True, text=True, cwd=tmp_path)
    assert listed.stdout.strip() == "[]", listed.stdout + listed.stderr
    history = ["2", "3", "4", "5"]
    proc = subprocess.run([str(python), "serve.py", "--history", ",".join(history), "--k", "6"], capture_output=True,
                          text=True, cwd=root / "export" / "sasrec-onnx")
    assert proc.returncode == 0, proc.stderr
    items, scores = TrainedStudent.load(root / "sasrec").recommend(history, 6)
    answer = json.loads(proc.stdout)
    assert answer["items"] == items
    np.testing.assert_allclose(answer["scores"], scores, atol=1e-4)
