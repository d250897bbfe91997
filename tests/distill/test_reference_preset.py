"""Reproducing the reference code: `preset=reference`, `batches=with_replacement`, `eval_mode=train`."""

import json

import pytest
import torch

from distill.config import REFERENCE_PRESET, TrainConfig
from distill.errors import ConfigError
from distill.inference import TrainedStudent
from distill.rundir import save_run
from distill.train import epoch_order, evaluate_split, train
from factories import chain_dataset, small_teacher

REFERENCE = {"selection": "test", "official_negative": True, "dro_weighting": "official", "confidence": "candidate",
             "projector": "linear", "distill_precision": "fp32", "eval_mode": "train",
             "batches": "with_replacement", "lam": "0.8", "ed_weight": 0.2}


def test_defaults_are_ours_not_the_reference():
    config = TrainConfig.from_options({})
    assert (config.preset, config.eval_mode, config.batches) == ("none", "eval", "permutation")
    assert config.selection == "val" and config.lam == "0.7" and config.ed_weight == 0.3


def test_the_reference_preset_sets_every_switch_and_an_explicit_option_wins():
    assert REFERENCE_PRESET == REFERENCE
    config = TrainConfig.from_options({"preset": "reference"})
    assert {name: getattr(config, name) for name in REFERENCE} == REFERENCE
    # explicit options win, also one equal to our default; the rest keep the preset's values
    mixed = TrainConfig.from_options({"preset": "reference", "lam": "0.5", "selection": "val", "eval_mode": "eval"})
    assert (mixed.lam, mixed.selection, mixed.eval_mode) == ("0.5", "val", "eval")
    assert mixed.batches == "with_replacement" and mixed.official_negative and mixed.ed_weight == 0.2
    # the effective values are the config: read back (config.json) it is the same config
    assert TrainConfig.from_options(mixed.to_dict()) == mixed
    # over a base (already resolved), the preset is applied again only when the options name it
    assert TrainConfig.from_options({"epochs": 3}, base=mixed).lam == "0.5"
    with pytest.raises(ConfigError, match="preset='paper'"):
        TrainConfig.from_options({"preset": "paper"})
    with pytest.raises(ConfigError, match="eval_mode"):
        TrainConfig.from_options({"eval_mode": "dropout"})


def test_with_replacement_repeats_rows_and_leaves_some_unseen():
    n = 2000
    order = epoch_order(n, "with_replacement", torch.Generator().manual_seed(0))
    assert order.shape == (n,) and int(order.min()) >= 0 and int(order.max()) < n
    seen = torch.unique(order).numel()
    assert seen < n                                  # some rows drawn more than once ...
    assert 0.30 < 1 - seen / n < 0.44                # ... and about 1/e of them never
    assert torch.equal(order, epoch_order(n, "with_replacement", torch.Generator().manual_seed(0)))
    perm = epoch_order(n, "permutation", torch.Generator().manual_seed(0))
    assert torch.equal(perm.sort().values, torch.arange(n))


def test_eval_mode_train_keeps_dropout_on_and_is_repeatable():
    data = chain_dataset(num_items=30, users=40)
    config = TrainConfig(student="sasrec", hidden=16, dropout=0.5, epochs=1, device="cpu")
    model = train(data, config).model
    model.train()
    rng = torch.get_rng_state()
    on = config.replace(eval_mode="train")
    first, second = evaluate_split(model, data.val, on), evaluate_split(model, data.val, on)
    assert first == second                                       # seeded dropout: the same scores
    assert first != evaluate_split(model, data.val, config)      # but not eval mode's
    assert evaluate_split(model, data.val, on.replace(seed=1)) != first
    assert torch.equal(torch.get_rng_state(), rng) and model.training   # the training stream and mode untouched


def test_a_reference_run_trains_and_its_config_json_shows_the_effective_values(tmp_path):
    data = chain_dataset(num_items=30, users=40)
    config = TrainConfig.from_options({"preset": "reference", "epochs": 2, "candidate_k": 5, "hidden": 16,
                                       "device": "cpu"})
    teacher = small_teacher(data)
    result = train(data, config, teacher)
    assert result.lam == 0.8 and result.distilled
    assert [r["loss"] for r in train(data, config, teacher).history] == [r["loss"] for r in result.history]
    metrics = save_run(result, data, tmp_path / "run", teacher)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert {name: stored[name] for name in REFERENCE} == REFERENCE and stored["preset"] == "reference"
    assert metrics["protocol"]["eval_mode"] == "train" and metrics["protocol"]["selection"] == "test ndcg@20"
    assert TrainedStudent.load(tmp_path / "run").config == config
