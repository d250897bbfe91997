"""The RecBole/UniSRec layout over REST, as a new user sends a public Amazon set: pre-split
`.inter` files keyed by indices, `.text` keyed by ASINs, the index maps, each a separate file.
The worker prepares it with the original tokens as ids and the true user count; a run trains on
it and /recommend answers in ASINs with their titles."""

import pytest

from distill.data.synth import write_recbole_splits
from tests.factories import RUN, folder_files, poll_run, prepared, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_unisrec_layout_uploads_prepares_trains_and_recommends_in_original_tokens(worker, client, tmp_path):
    made = write_recbole_splits(tmp_path, name="Office", users=2000, items=1100, seed=3)
    files = folder_files(tmp_path)
    assert {name for name, _ in files} >= {"Office.train.inter", "Office.valid.inter", "Office.test.inter",
                                           "Office.text", "Office.item2index", "Office.user2index"}
    dataset = prepared(client, upload(client, name="office", fmt=None, files=files))
    assert dataset["status"] == "ready", dataset["error"]
    assert dataset["format"] == "recbole"
    assert dataset["stats"]["users"] == made["users"] == 2000     # users, not one per instance
    used = {index for split in ("train", "valid", "test")
            for line in (tmp_path / f"Office.{split}.inter").read_text().splitlines()[1:]
            for index in line.split("\t")[1].split() + [line.split("\t")[2]]}
    assert len(used) >= 1000   # the items the files use are the dataset's items
    assert dataset["stats"]["instances"]["test"] == 2000 and dataset["stats"]["items"] == len(used)

    run = client.post("/api/runs/", {**RUN, "name": "office", "train": {"epochs": 1},
                                     "dataset": dataset["id"]}, format="json")
    assert run.status_code == 201, run.content
    body = poll_run(client, run.json()["id"])
    assert body["status"] == "succeeded", body["error"]

    text = (tmp_path / "Office.text").read_text().splitlines()[1:]
    titles = dict(line.split("\t", 1) for line in text)
    history = list(titles)[:3]
    assert all(token.startswith("B0") for token in history)
    answer = client.post(f"/api/runs/{body['id']}/recommend/", {"history": history, "k": 5}, format="json")
    assert answer.status_code == 200, answer.content
    items = answer.json()["items"]
    assert len(items) == 5
    for item in items:
        assert item["id"] in titles and item["id"] not in history
        assert item["title"] == titles[item["id"]].strip()
    by_index = client.post(f"/api/runs/{body['id']}/recommend/", {"history": ["1", "2"]}, format="json")
    assert by_index.status_code == 400 and "'1'" in by_index.json()["history"][0]
