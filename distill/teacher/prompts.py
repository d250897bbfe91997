"""BIGRec's prompts (docs/method.md §2.2): an Alpaca-style instruction, the history as quoted titles, the
next title as the response. The same text feeds fine-tuning, generation on every backend, and
the cache key, so it is built in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from distill.errors import ConfigError

ALPACA = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n"
    "### Input:\n{input}\n\n"
    "### Response:\n"
)


@dataclass(frozen=True)
class PromptStyle:
    items: str = "items"                 # plural noun: "movies", "video games"
    item: str = "item"                   # singular noun: "movie", "video game"
    verb: str = "interacted with"        # what the user did: "watched", "played"
    template: str = ALPACA               # must contain {instruction} and {input}

    def __post_init__(self) -> None:
        missing = [field for field in ("{instruction}", "{input}") if field not in self.template]
        if missing:
            raise ConfigError(f"prompt template is missing {' and '.join(missing)}; a custom template must place "
                              "both, e.g. '...{instruction}...{input}...'")

    @property
    def instruction(self) -> str:
        return (f"Given a list of {self.items} the user has {self.verb} before, please recommend a new "
                f"{self.item} that the user likes to the user.")

    def history(self, titles: list[str]) -> str:
        quoted = ", ".join(f'"{title}"' for title in titles)
        return f"The user has {self.verb} the following {self.items} before: {quoted}"

    def prompt(self, titles: list[str], fits: Callable[[str], bool] | None = None) -> str:
        """The prompt for a history (oldest first). With `fits` (e.g. a token-count check against
        the model's context), the oldest titles are dropped until it fits; the latest always stays."""
        kept = list(titles)
        text = self._render(kept)
        while fits is not None and len(kept) > 1 and not fits(text):
            kept = kept[1:]
            text = self._render(kept)
        return text

    def response(self, title: str) -> str:
        return f'"{title}"'

    def _render(self, titles: list[str]) -> str:
        return self.template.replace("{instruction}", self.instruction).replace("{input}", self.history(titles))


PRESETS = {
    "neutral": PromptStyle(),
    "movies": PromptStyle(items="movies", item="movie", verb="watched"),
    "video games": PromptStyle(items="video games", item="video game", verb="played"),
}


def prompt_style(name: str = "neutral", template: str | None = None) -> PromptStyle:
    """A preset by name, optionally with a custom template."""
    if name not in PRESETS:
        raise ConfigError(f"unknown prompt style {name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    return preset if template is None else PromptStyle(preset.items, preset.item, preset.verb, template)


PROMPT_CHUNK = 2048   # prompts rendered and measured at once (and between two cancel checks)


def instance_prompts(titles: list[str], seq, len_seq, style: PromptStyle,
                     fits: Callable[[str], bool] | None = None,
                     should_cancel: Callable[[], bool] | None = None) -> list[str]:
    """One prompt per instance of a split (rows of `seq`/`len_seq`), history oldest first.

    With a `TokenBudget` as `fits`, whole chunks of full prompts are measured in one batched
    tokenizer call; only the (few) prompts over the budget are cut title by title."""
    from distill.errors import raise_if_cancelled
    histories = [[titles[i] for i in row[:n]] for row, n in zip(seq.tolist(), len_seq.tolist())]
    out: list[str] = []
    for start in range(0, len(histories), PROMPT_CHUNK):
        raise_if_cancelled(should_cancel)
        chunk = histories[start:start + PROMPT_CHUNK]
        if isinstance(fits, TokenBudget):
            full = [style.prompt(history) for history in chunk]
            out.extend(text if ok else style.prompt(history, fits)
                       for text, ok, history in zip(full, fits.many(full), chunk))
        else:
            out.extend(style.prompt(history, fits) for history in chunk)
    return out


class TokenBudget:
    """`fits` for PromptStyle.prompt: the prompt's token count (special tokens included) <= budget;
    `many` answers for a list in one batched tokenizer call."""

    def __init__(self, tokenizer, budget: int) -> None:
        self.tokenizer, self.budget = tokenizer, budget

    def __call__(self, text: str) -> bool:
        return len(self.tokenizer(text).input_ids) <= self.budget

    def many(self, texts: list[str]) -> list[bool]:
        return [len(ids) <= self.budget for ids in self.tokenizer(texts).input_ids]


def token_budget(tokenizer, budget: int) -> TokenBudget:
    return TokenBudget(tokenizer, budget)


def clean_generation(text: str) -> str:
    """The title in a generated response: its first line, without the quotes the prompt asks for."""
    line = text.strip().split("\n", 1)[0].strip()
    if line.startswith('"'):
        end = line.find('"', 1)
        line = line[1:end] if end > 0 else line[1:]
    return line.strip().strip('"').strip()
