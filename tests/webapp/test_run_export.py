"""GET /api/runs/<id>/export/?format=onnx|torchscript: the run's student as a zip that loads in
onnxruntime or torch.jit and answers as /recommend does; owner only, built once, bad requests named."""

import io
import json
import zipfile

import numpy as np
import onnxruntime
import pytest
import torch

from tests.factories import served_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(user):
    return served_run(user)


def export(client, run, **params):
    return client.get(f"/api/runs/{run.pk}/export/", params)


def unpack(response, tmp_path):
    assert response.status_code == 200, response.content if hasattr(response, "content") else response
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    archive.extractall(tmp_path)
    (folder,) = tmp_path.iterdir()
    return folder


def model_inputs(card, items, history):
    index = {item: i for i, item in enumerate(items["ids"])}
    window = [index[i] for i in history][-card["interface"]["max_len"]:]
    seq = np.full((1, card["interface"]["max_len"]), card["interface"]["pad_id"], dtype=np.int64)
    seq[0, :len(window)] = window
    return seq, np.array([len(window)], dtype=np.int64), np.array([[index[i] for i in history]], dtype=np.int64)


def test_an_onnx_export_answers_as_recommend(client, run, tmp_path):
    folder = unpack(export(client, run, format="onnx", k=10), tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["items.json", "model.onnx", "model_card.json",
                                                         "model_card.md", "serve.py"]
    card, items = (json.loads((folder / name).read_text()) for name in ("model_card.json", "items.json"))
    history = items["ids"][4:9]
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    seq, len_seq, exclude = model_inputs(card, items, history)
    ids, scores = session.run(None, {"seq": seq, "len_seq": len_seq, "exclude": exclude})
    served = client.post(f"/api/runs/{run.pk}/recommend/", {"history": history, "k": 10}, format="json").json()
    assert [items["ids"][i] for i in ids[0]] == [i["id"] for i in served["items"]]
    np.testing.assert_allclose(scores[0], [i["score"] for i in served["items"]], atol=1e-4)
    assert card["dataset"]["name"] == "synthetic served" and card["check"]["histories"] > 0


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_a_torchscript_export_of_the_baseline_answers_as_its_recommend(client, run, tmp_path):
    folder = unpack(export(client, run, format="torchscript", role="baseline", k=5), tmp_path)
    card, items = (json.loads((folder / name).read_text()) for name in ("model_card.json", "items.json"))
    assert card["distilled"] is False
    history = items["ids"][10:13]
    module = torch.jit.load(str(folder / "model.pt"))
    ids, _ = module(*map(torch.from_numpy, model_inputs(card, items, history)))
    served = client.post(f"/api/runs/{run.pk}/recommend/", {"history": history, "k": 5, "role": "baseline"},
                         format="json").json()
    assert [items["ids"][i] for i in ids[0].tolist()] == [i["id"] for i in served["items"]]


def test_a_second_request_downloads_the_kept_zip_without_exporting_again(client, run, monkeypatch):
    first = b"".join(export(client, run, format="onnx").streaming_content)

    def refuse(*args, **kwargs):
        raise AssertionError("exported again")
    monkeypatch.setattr("distill.export.export_run", refuse)
    again = export(client, run, format="onnx")
    assert again.status_code == 200 and b"".join(again.streaming_content) == first


def test_another_users_run_is_a_404_and_anonymous_a_401(other_client, anonymous, run):
    assert export(other_client, run, format="onnx").status_code == 404
    assert export(anonymous, run, format="onnx").status_code == 401


def test_an_unknown_format_is_a_400_listing_the_formats(client, run):
    response = export(client, run, format="tflite")
    assert response.status_code == 400 and "onnx, torchscript" in response.json()["format"][0]


def test_a_run_that_has_not_succeeded_is_a_409_with_its_status(client, run):
    from webapp.studio.models import Run
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    response = export(client, run, format="onnx")
    assert response.status_code == 409 and response.json()["status"] == "failed"


def test_a_student_that_cannot_be_exported_is_a_400_saying_so(client, run):
    from webapp.studio.stages import student_dir
    config = student_dir(run, "distilled") / "config.json"
    meta = json.loads(config.read_text())
    meta["config"]["student"] = "bert4rec"
    config.write_text(json.dumps(meta))
    response = export(client, run, format="onnx")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "'bert4rec' cannot be exported" in detail and "/runs/" not in detail


def test_exports_have_a_budget_of_their_own(client, run, monkeypatch):
    from webapp.studio.throttles import UploadThrottle
    monkeypatch.setattr(UploadThrottle, "THROTTLE_RATES", {"exports": "2/hour", "runs": "1000/hour"})
    codes = [export(client, run, format="onnx").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_the_run_page_links_the_exports_and_they_download_with_the_session(web, run):
    page = web.get(f"/runs/{run.pk}/").content.decode()
    link = f"/api/runs/{run.pk}/export/?format=onnx&amp;role=distilled"
    assert link in page
    response = web.get(link.replace("&amp;", "&"))
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("k", ["0", "1001", "²", "ten", "-5"])
def test_a_k_outside_1_to_1000_is_a_400_naming_k(client, run, k):
    response = export(client, run, format="onnx", k=k)
    assert response.status_code == 400 and "1..1000" in response.json()["k"][0]
