"""Why training stopped: the epoch cap or early stopping, in TrainResult and metrics.json."""

import json

from distill.config import TrainConfig
from distill.rundir import save_run
from distill.train import train
from factories import chain_dataset, small_teacher


def test_the_epoch_cap_ends_a_run_that_patience_would_continue(tmp_path):
    data = chain_dataset(num_items=30, users=40)
    result = train(data, TrainConfig(student="gru4rec", epochs=2, patience=5))
    assert result.stopped_by == "epochs" and result.epochs_run == 2 == len(result.history)
    metrics = save_run(result, data, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert stored["stopped_by"] == metrics["stopped_by"] == "epochs" and stored["epochs_run"] == 2
    assert stored["best_epoch"] == result.best_epoch


def test_patience_ends_a_run_before_the_cap():
    data = chain_dataset(num_items=30, users=40)
    result = train(data, TrainConfig(student="gru4rec", epochs=40, patience=1, lr=1e-2))
    assert result.stopped_by == "patience"
    assert result.epochs_run == result.best_epoch + 1 < 40


def test_lam_auto_records_why_each_candidate_stopped():
    data = chain_dataset(num_items=30, users=40)
    result = train(data, TrainConfig(student="gru4rec", epochs=1, lam="auto", candidate_k=5), small_teacher(data))
    choice = result.lam_auto
    grid = {str(lam) for lam in choice["grid"]}
    assert set(choice["stopped_by"]) == grid and set(choice["stopped_by"].values()) == {"epochs"}
    assert choice["epochs_run"] == {lam: 1 for lam in grid} and choice["best_epoch"] == {lam: 1 for lam in grid}
    assert result.stopped_by == choice["stopped_by"][str(result.lam)]
