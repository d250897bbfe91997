"""Student training options with a resource cost are bounded (`TrainConfig.from_options`), and a
distillation that wants more candidates than its teacher lists is refused at once."""

import pytest

from distill.config import TrainConfig, check_candidate_k, config_fields
from distill.errors import ConfigError


@pytest.mark.parametrize("name, value, allowed", [
    ("hidden", 10**7, "1..1024"),
    ("hidden", 0, "1..1024"),
    ("num_blocks", 9, "1..8"),
    ("num_heads", 17, "1..16"),
    ("gru_layers", 9, "1..8"),
    ("num_filters", 257, "1..256"),
    ("epochs", 1001, "1..1000"),
    ("epochs", 0, "1..1000"),
    ("patience", 1001, "0..1000"),
    ("patience", -1, "0..1000"),
    ("batch_size", 8193, "1..8192"),
    ("eval_batch", 8193, "1..8192"),
])
def test_an_out_of_range_train_option_names_itself_and_its_range(name, value, allowed):
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_options({name: value})
    assert str(caught.value) == f"train option {name}={value} is out of range: {allowed}"


def test_candidate_k_is_bounded_in_the_distill_section():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_options({"candidate_k": "1000000"})  # a --set string is converted first
    assert str(caught.value) == "distill option candidate_k=1000000 is out of range: 1..1000"


@pytest.mark.parametrize("sizes", ["2,3,1000", ",".join(["2"] * 11)])
def test_caser_filter_heights_are_bounded_in_number_and_height(sizes):
    with pytest.raises(ConfigError, match=r"^train option filter_sizes=.* is out of range: 1 to 10 heights, "
                                          r"each 1\.\.200$"):
        TrainConfig.from_options({"student": "caser", "filter_sizes": sizes})


def test_an_infinite_number_is_refused():
    with pytest.raises(ConfigError, match=r"^option lr='inf': expected float$"):
        TrainConfig.from_options({"lr": "inf"})


def test_the_defaults_and_the_bounds_themselves_are_accepted():
    TrainConfig()
    config = TrainConfig.from_options({"hidden": 1024, "num_heads": 16, "num_blocks": 8, "batch_size": 8192,
                                       "epochs": 1000, "candidate_k": 1000, "patience": 0})
    assert (config.hidden, config.batch_size, config.candidate_k) == (1024, 8192, 1000)


def test_config_fields_expose_the_bounds():
    fields = {option["name"]: option for option in config_fields()}
    assert (fields["hidden"]["min"], fields["hidden"]["max"]) == (1, 1024)
    assert (fields["lr"]["min"], fields["lr"]["max"]) == (None, None)


def test_candidate_k_above_the_teachers_k_is_refused_naming_both():
    with pytest.raises(ConfigError) as caught:
        check_candidate_k(TrainConfig(candidate_k=30), teacher_k=20)
    assert str(caught.value) == ("distill option candidate_k=30 is more than the teacher's k=20: set "
                                 "candidate_k <= 20, or give the teacher k >= 30")


def test_candidate_k_up_to_the_teachers_k_is_accepted():
    assert check_candidate_k(TrainConfig(candidate_k=20), teacher_k=20) is None
