"""BIGRec's prompt text, exactly, and its left cut to fit a context."""

import pytest

from distill.errors import ConfigError
from distill.teacher.prompts import prompt_style


def test_movie_prompt_is_bigrecs_alpaca_prompt():
    style = prompt_style("movies")
    assert style.prompt(["Toy Story (1995)", "Heat (1995)"]) == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nGiven a list of movies the user has watched before, please recommend a new movie "
        "that the user likes to the user.\n\n"
        '### Input:\nThe user has watched the following movies before: "Toy Story (1995)", "Heat (1995)"\n\n'
        "### Response:\n")
    assert style.response("Fargo (1996)") == '"Fargo (1996)"'


def test_presets_and_neutral_default():
    assert "video games the user has played" in prompt_style("video games").prompt(["Zelda"])
    assert "items the user has interacted with" in prompt_style().prompt(["A"])
    with pytest.raises(ConfigError, match="unknown prompt style 'books'"):
        prompt_style("books")


def test_custom_template_keeps_the_wording_and_is_checked():
    style = prompt_style("movies", template="Q: {instruction}\nHistory: {input}\nA:")
    assert style.prompt(["Heat"]).startswith("Q: Given a list of movies")
    assert style.prompt(["Heat"]).endswith('before: "Heat"\nA:')
    with pytest.raises(ConfigError, match=r"missing \{input\}"):
        prompt_style("movies", template="{instruction} only")


def test_history_is_cut_from_the_left_to_fit_and_keeps_the_latest():
    style = prompt_style("movies")
    titles = [f"Film {i}" for i in range(10)]
    limit = len(style.prompt(titles[-3:]))
    cut = style.prompt(titles, fits=lambda text: len(text) <= limit)
    assert cut == style.prompt(titles[-3:])
    assert '"Film 9"' in style.prompt(titles, fits=lambda text: False)     # never empty
