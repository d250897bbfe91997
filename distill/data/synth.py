"""A synthetic catalogue with learnable signal in both the sequences and the titles.

The demo and the benchmarks need data whose structure a sequential student can learn from the
item ids and an LLM teacher can learn from the titles. The generative story:

1. **Topics and words.** There are `topics` topics, each with its own vocabulary of
   `WORDS_PER_TOPIC` words ("space": Orbit, Nebula, Rocket, ...). The first 20 topics use the
   built-in lists below; further topics get made-up, pronounceable words drawn with the seed.
   No word belongs to two topics, so a title's topic can be read off its words.
2. **Items.** Items are split among the topics (sizes vary around `items / topics`). Within a
   topic the items form an ordered list, cut into short *series* of 1-4 consecutive items.
   A series shares a base title of 2-3 topic words plus, sometimes, one generic word
   ("Saga", "Deluxe"); each item appends its 1-based position in the topic, which makes the title
   unique: "Nebula Rocket Saga 17", "Nebula Rocket Saga 18". Popularity is Zipf-like in that
   position (the topic's first items are its hits).
3. **Users.** Each user has a preference over topics drawn from a Dirichlet concentrated on about
   `PREFERRED_TOPICS` topics, and a current topic drawn from it. At each step:
   - with probability `drift` the current topic moves to another topic drawn from the user's
     preference (the current one excluded), so interests drift over time;
   - if the topic stayed and the last item has a sequel (the next item of its series), the user
     takes the sequel with probability `SEQUEL_PROB`;
   - otherwise the user takes an item of the current topic by its Zipf popularity.
   Items the user already has are redrawn, so a history rarely repeats an item.
4. **Time.** Users start at times spread over `START_SPREAD_DAYS` and then interact at their own
   rate (exponential gaps). Activity spans are long compared with the spread of start times,
   so a global split by time mixes users: most test users also have training history.

Item ids are shuffled over the catalogue, so an id says nothing about the topic; only the
co-occurrence in sequences (for a student) and the title words (for a teacher) do.

Written files (what `distill`'s CSV reader reads)::

    interactions.csv   user_id,item_id,timestamp   (by user, then time)
    items.csv          item_id,title               (every item 0..items-1, including unseen ones)

`write_recbole_splits` writes the same kind of catalogue in RecBole/UniSRec's split layout
(`NAME.{train,valid,test}.inter` with integer indices, `NAME.item2index`, `NAME.user2index`,
`NAME.text` keyed by ASIN-like tokens), which the recbole reader reads.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from distill.errors import ConfigError

TOPIC_WORDS: dict[str, tuple[str, ...]] = {
    "space": ("Orbit", "Nebula", "Rocket", "Comet", "Galaxy", "Asteroid",
              "Quasar", "Eclipse", "Meteor", "Pulsar", "Cosmos", "Satellite"),
    "ocean": ("Coral", "Tide", "Reef", "Harbor", "Anchor", "Lagoon",
              "Whale", "Current", "Kelp", "Shipwreck", "Mariner", "Dolphin"),
    "forest": ("Pine", "Fern", "Moss", "Oak", "Grove", "Timber",
               "Acorn", "Thicket", "Willow", "Canopy", "Birch", "Woodland"),
    "cooking": ("Saffron", "Skillet", "Basil", "Pastry", "Garlic", "Simmer",
                "Ginger", "Truffle", "Butter", "Oven", "Cinnamon", "Spatula"),
    "music": ("Melody", "Rhythm", "Chorus", "Violin", "Ballad", "Tempo",
              "Harmony", "Cello", "Sonata", "Drum", "Lyric", "Piano"),
    "mystery": ("Detective", "Alibi", "Clue", "Suspect", "Cipher", "Shadow",
                "Secret", "Witness", "Motive", "Riddle", "Verdict", "Locket"),
    "fantasy": ("Dragon", "Wizard", "Rune", "Castle", "Sorcery", "Goblin",
                "Elf", "Scepter", "Potion", "Griffin", "Enchanted", "Quest"),
    "sports": ("Goal", "Stadium", "Sprint", "Referee", "Trophy", "Marathon",
               "Racket", "Dribble", "Champion", "Playoff", "Tackle", "Jersey"),
    "history": ("Empire", "Dynasty", "Pharaoh", "Crusade", "Revolution", "Monarch",
                "Legion", "Treaty", "Siege", "Artifact", "Senate", "Relic"),
    "science": ("Atom", "Molecule", "Quantum", "Neuron", "Enzyme", "Formula",
                "Laboratory", "Particle", "Genome", "Catalyst", "Isotope", "Theorem"),
    "travel": ("Passport", "Voyage", "Compass", "Suitcase", "Journey", "Backpack",
               "Safari", "Postcard", "Itinerary", "Nomad", "Railway", "Souvenir"),
    "gardening": ("Tulip", "Seedling", "Compost", "Orchid", "Trellis", "Blossom",
                  "Daisy", "Greenhouse", "Petal", "Sunflower", "Lavender", "Pruning"),
    "technology": ("Circuit", "Robot", "Algorithm", "Pixel", "Processor", "Network",
                   "Laser", "Silicon", "Gadget", "Cyber", "Software", "Drone"),
    "animals": ("Tiger", "Panda", "Falcon", "Wolf", "Otter", "Jaguar",
                "Koala", "Zebra", "Penguin", "Fox", "Badger", "Hedgehog"),
    "weather": ("Storm", "Thunder", "Blizzard", "Drizzle", "Cyclone", "Rainbow",
                "Frost", "Monsoon", "Breeze", "Hail", "Tornado", "Fog"),
    "art": ("Canvas", "Sculpture", "Palette", "Mosaic", "Easel", "Fresco",
            "Portrait", "Charcoal", "Gallery", "Sketch", "Watercolor", "Mural"),
    "fashion": ("Velvet", "Silk", "Denim", "Runway", "Couture", "Sequin",
                "Stiletto", "Tailor", "Scarf", "Linen", "Boutique", "Corset"),
    "mountains": ("Summit", "Glacier", "Avalanche", "Ridge", "Canyon", "Boulder",
                  "Alpine", "Crevasse", "Cliff", "Plateau", "Sherpa", "Peak"),
    "desert": ("Dune", "Oasis", "Cactus", "Mirage", "Camel", "Sandstorm",
               "Scorpion", "Caravan", "Sahara", "Mesa", "Tumbleweed", "Scarab"),
    "horror": ("Phantom", "Vampire", "Crypt", "Haunted", "Zombie", "Werewolf",
               "Coffin", "Specter", "Banshee", "Ghoul", "Cemetery", "Nightmare"),
}
GENERIC_WORDS = ("Saga", "Edition", "Collection", "Deluxe", "Classic", "Legends",
                 "Tales", "Origins", "Returns", "Remastered", "Volume", "Adventures")
WORDS_PER_TOPIC = 12

# Titles: a series' base has 2-3 topic words, and one generic word with this probability.
GENERIC_WORD_PROB = 0.25
# A new series starts at each item with this probability (mean series length 2.5).
SERIES_START_PROB = 0.4
# Popularity of the k-th item of a topic (k = 0, 1, ...) is proportional to (k + 1) ** -ZIPF_EXPONENT.
ZIPF_EXPONENT = 0.9
# A user's Dirichlet preference puts most of its mass on about this many topics.
PREFERRED_TOPICS = 3
SEQUEL_PROB = 0.3
# Redraws of an item the user already has before accepting a repeat.
MAX_REDRAWS = 8

BASE_TIME = 1_600_000_000  # 2020-09-13, seconds
DAY = 86_400
START_SPREAD_DAYS = 180
MEAN_GAP_DAYS = 7.0

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "kr", "st", "tr", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")


def generate_synthetic(
    out: str | Path,
    *,
    users: int = 1000,
    items: int = 1000,
    topics: int = 20,
    interactions_per_user: tuple[int, int] = (20, 60),
    seed: int = 0,
    drift: float = 0.1,
) -> dict:
    """Write `interactions.csv` and `items.csv` into directory `out` (created if needed).

    `interactions_per_user` is an inclusive (min, max) range. The same arguments always give
    byte-identical files. Returns a summary: users, items, interactions, topics, seed, path.
    """
    world = _World(users, items, topics, interactions_per_user, seed, drift)
    user_column, item_column, time_column = world.columns()
    titles, lengths = world.titles, world.lengths

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "interactions.csv", ("user_id", "item_id", "timestamp"),
               zip(user_column.tolist(), item_column.tolist(), time_column.tolist()))
    _write_csv(out / "items.csv", ("item_id", "title"), enumerate(titles))
    return {"users": users, "items": items, "interactions": int(lengths.sum()),
            "topics": topics, "seed": seed, "path": str(out)}


class _World:
    """The generative story above, drawn once: item titles and every user's items in time order."""

    def __init__(self, users: int, items: int, topics: int, interactions_per_user: tuple[int, int],
                 seed: int, drift: float):
        low, high = _check_arguments(users, items, topics, interactions_per_user, drift)
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.users, self.high = users, high
        self.vocabularies = topic_vocabularies(topics, rng)
        self.catalogue = _Catalogue(items, topics, rng)
        self.titles = self.catalogue.titles(self.vocabularies, rng)
        self.history, self.lengths = _simulate_histories(self.catalogue, users, low, high, drift, rng)
        self.timestamps = _timestamps(users, high, rng)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item id, timestamp) of every interaction, by user, then time."""
        taken = np.arange(self.high)[None, :] < self.lengths[:, None]
        return (np.repeat(np.arange(self.users), self.lengths),
                self.catalogue.item_of_position[self.history[taken]], self.timestamps[taken])

    def topic_of_item(self) -> np.ndarray:
        topic = np.empty(len(self.catalogue.item_of_position), dtype=np.int64)
        topic[self.catalogue.item_of_position] = self.catalogue.topic_of_position
        return topic


def topic_vocabularies(topics: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """One tuple of `WORDS_PER_TOPIC` capitalised words per topic; no word is in two topics."""
    vocabularies = list(TOPIC_WORDS.values())[:topics]
    used = {word for words in vocabularies for word in words} | set(GENERIC_WORDS)
    while len(vocabularies) < topics:
        words = []
        while len(words) < WORDS_PER_TOPIC:
            syllables = rng.integers(2, 4)
            word = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                           for _ in range(syllables)).capitalize()
            if word not in used:
                used.add(word)
                words.append(word)
        vocabularies.append(tuple(words))
    return vocabularies


class _Catalogue:
    """Items laid out topic by topic ("positions"); `item_of_position` maps them to shuffled ids."""

    def __init__(self, items: int, topics: int, rng: np.random.Generator):
        sizes = 1 + rng.multinomial(items - topics, rng.dirichlet(np.full(topics, 5.0)))
        self.topic_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self.topic_end = self.topic_start + sizes
        self.topic_of_position = np.repeat(np.arange(topics), sizes)
        self.rank_in_topic = np.arange(items) - self.topic_start[self.topic_of_position]

        starts_series = rng.random(items) < SERIES_START_PROB
        starts_series[self.topic_start] = True
        self.series_of_position = np.cumsum(starts_series) - 1
        following = np.append(self.series_of_position[1:], -1)
        self.has_sequel = following == self.series_of_position

        # Zipf popularity as one increasing array: topic t's items cover (t, t + 1], so that
        # searching t + u (u uniform) draws an item of topic t by its popularity.
        weight = (self.rank_in_topic + 1.0) ** -ZIPF_EXPONENT
        cumulative = np.cumsum(weight)
        before_topic = cumulative[self.topic_start] - weight[self.topic_start]
        topic_total = cumulative[self.topic_end - 1] - before_topic
        t = self.topic_of_position
        self.popularity_cdf = t + (cumulative - before_topic[t]) / topic_total[t]

        self.item_of_position = rng.permutation(items)

    def draw(self, topic: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One position per entry of `topic`, by Zipf popularity within that topic."""
        position = np.searchsorted(self.popularity_cdf, topic + rng.random(topic.shape), side="right")
        return np.clip(position, self.topic_start[topic], self.topic_end[topic] - 1)

    def titles(self, vocabularies: list[tuple[str, ...]], rng: np.random.Generator) -> list[str]:
        """Titles indexed by item id: the series' base words and the item's number in its topic."""
        series_count = int(self.series_of_position[-1]) + 1
        first = np.flatnonzero(np.diff(self.series_of_position, prepend=-1))
        series_topic = self.topic_of_position[first]
        word_order = np.argsort(rng.random((series_count, WORDS_PER_TOPIC)), axis=1)
        word_count = rng.integers(2, 4, size=series_count)
        generic = np.where(rng.random(series_count) < GENERIC_WORD_PROB,
                           rng.integers(len(GENERIC_WORDS), size=series_count), -1)
        bases = []
        for s in range(series_count):
            words = [vocabularies[series_topic[s]][w] for w in word_order[s, :word_count[s]]]
            if generic[s] >= 0:
                words.append(GENERIC_WORDS[generic[s]])
            bases.append(" ".join(words))

        titles = [""] * len(self.item_of_position)
        for position, item in enumerate(self.item_of_position.tolist()):
            number = self.rank_in_topic[position] + 1
            titles[item] = f"{bases[self.series_of_position[position]]} {number}"
        return titles


def _simulate_histories(catalogue: _Catalogue, users: int, low: int, high: int, drift: float,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Histories as item positions, [users, high] (-1 past each user's length), and the lengths.

    Steps run in time order and are vectorised over all users still active at that step.
    """
    topics = len(catalogue.topic_start)
    lengths = rng.integers(low, high + 1, size=users)
    preference = rng.dirichlet(np.full(topics, min(1.0, PREFERRED_TOPICS / topics)), size=users)
    topic = _draw_rows(preference, rng)
    history = np.full((users, high), -1, dtype=np.int64)

    for step in range(high):
        active = np.flatnonzero(lengths > step)
        current = topic[active]
        item = catalogue.draw(current, rng)
        if step > 0:
            moves = np.flatnonzero(rng.random(active.size) < drift) if topics > 1 else np.empty(0, int)
            others = preference[active[moves]] + 1e-12  # a floor, in case a row underflowed to 0
            others[np.arange(moves.size), current[moves]] = 0.0
            current[moves] = _draw_rows(others, rng)
            item[moves] = catalogue.draw(current[moves], rng)

            last = history[active, step - 1]
            sequel = catalogue.has_sequel[last] & (rng.random(active.size) < SEQUEL_PROB)
            sequel[moves] = False
            item[sequel] = last[sequel] + 1

            for _ in range(MAX_REDRAWS):
                repeat = np.flatnonzero((history[active, :step] == item[:, None]).any(axis=1))
                if repeat.size == 0:
                    break
                item[repeat] = catalogue.draw(current[repeat], rng)
        topic[active] = current
        history[active, step] = item
    return history, lengths


def _draw_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row of non-negative `weights`, proportional to the row."""
    cumulative = np.cumsum(weights, axis=1)
    target = rng.random(len(weights)) * cumulative[:, -1]
    index = (cumulative <= target[:, None]).sum(axis=1)
    return np.minimum(index, weights.shape[1] - 1)


def _timestamps(users: int, high: int, rng: np.random.Generator) -> np.ndarray:
    """Strictly increasing integer seconds per user, [users, high]."""
    start = BASE_TIME + rng.integers(0, START_SPREAD_DAYS * DAY, size=users)
    mean_gap = MEAN_GAP_DAYS * DAY * rng.lognormal(0.0, 0.5, size=users)
    gaps = 1 + np.floor(rng.exponential(1.0, size=(users, high)) * mean_gap[:, None]).astype(np.int64)
    return start[:, None] + np.cumsum(gaps, axis=1)


def _write_csv(path: Path, header: tuple[str, ...], rows) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _check_arguments(users, items, topics, interactions_per_user, drift) -> tuple[int, int]:
    if users < 1:
        raise ConfigError(f"users={users}: need at least 1 user")
    if topics < 1:
        raise ConfigError(f"topics={topics}: need at least 1 topic")
    if items < topics:
        raise ConfigError(f"items={items}: need at least one item per topic (topics={topics})")
    try:
        low, high = (int(n) for n in interactions_per_user)
    except (TypeError, ValueError):
        raise ConfigError(f"interactions_per_user={interactions_per_user!r}: expected (min, max)") from None
    if not 1 <= low <= high:
        raise ConfigError(f"interactions_per_user={interactions_per_user!r}: need 1 <= min <= max")
    if not 0.0 <= drift <= 1.0:
        raise ConfigError(f"drift={drift}: must lie in [0, 1]")
    return low, high


# ---------------------------------------------------------------------------------------------
# The same catalogue in RecBole/UniSRec's split layout

RECBOLE_INTERACTIONS = (5, 30)   # items per user: every user has a train, a valid and a test row
RECBOLE_HISTORY = 50             # UniSRec keeps the last 50 items of a history
TOKEN_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
DESCRIPTION_ADJECTIVES = ("durable", "compact", "elegant", "practical", "sturdy", "lightweight",
                          "colourful", "classic", "versatile", "handy")
DESCRIPTION_USES = ("for everyday use", "for the home office", "for gifts and collectors",
                    "for long evenings", "for weekend projects", "for travel and commuting")
DESCRIPTION_PRAISE = ("made to last", "easy to use", "loved by fans of the series",
                      "a favourite of regular customers", "with a two-year warranty")


def write_recbole_splits(out: str | Path, name: str = "Office", users: int = 2000, items: int = 1000,
                         seed: int = 0) -> dict:
    """Write the synthetic catalogue in the UniSRec layout of the recbole format into `out`:

        NAME.train.inter, NAME.valid.inter, NAME.test.inter
            user_id:token<TAB>item_id_list:token_seq<TAB>item_id:token, integer indices (1..n);
            train: one row per target of each user's sequence but the last two (history = up to
            50 previous items), valid: the second-to-last target, test: the last
        NAME.item2index, NAME.user2index   token<TAB>index lines, no header
        NAME.text   item_id:token<TAB>text:token_seq, keyed by ASIN-like tokens (B0 + 8 letters and
                    digits); the text is the item's title and a description sentence

    Sequences and titles come from the generator above (`generate_synthetic`), so the layout
    carries the same learnable signal. Deterministic by `seed`. Returns users, items, files."""
    world = _World(users, items, min(20, items), RECBOLE_INTERACTIONS, seed, 0.1)
    rng = world.rng
    item_tokens = _tokens(rng, items, "B0", 8)
    user_tokens = _tokens(rng, users, "A", 13)
    user_column, item_column, _ = world.columns()
    index = (item_column + 1).astype(str).tolist()     # item id i is index i + 1
    starts = np.concatenate(([0], np.cumsum(world.lengths)[:-1])).tolist()

    rows = {"train": [], "valid": [], "test": []}
    for user, (start, length) in enumerate(zip(starts, world.lengths.tolist())):
        for target in range(1, length):
            history = " ".join(index[start + max(0, target - RECBOLE_HISTORY): start + target])
            split = "test" if target == length - 1 else "valid" if target == length - 2 else "train"
            rows[split].append(f"{user + 1}\t{history}\t{index[start + target]}\n")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    files = []
    for split, lines in rows.items():
        files.append(_write_lines(out / f"{name}.{split}.inter", [header, *lines]))
    files.append(_write_lines(out / f"{name}.item2index",
                              [f"{token}\t{i + 1}\n" for i, token in enumerate(item_tokens.tolist())]))
    files.append(_write_lines(out / f"{name}.user2index",
                              [f"{token}\t{u + 1}\n" for u, token in enumerate(user_tokens.tolist())]))
    texts = _descriptions(world, rng)
    files.append(_write_lines(out / f"{name}.text", ["item_id:token\ttext:token_seq\n"] + [
        f"{token}\t{text}\n" for token, text in zip(item_tokens.tolist(), texts)]))
    return {"users": users, "items": items, "files": files}


def _tokens(rng: np.random.Generator, count: int, prefix: str, length: int) -> np.ndarray:
    """`count` distinct ids: `prefix` + `length` uppercase letters and digits, like ASINs."""
    tokens = np.empty(0, dtype=f"<U{len(prefix) + length}")
    while len(tokens) < count:
        draw = TOKEN_ALPHABET[rng.integers(len(TOKEN_ALPHABET), size=(count - len(tokens), length))]
        more = np.char.add(prefix, np.ascontiguousarray(draw).view(f"<U{length}").ravel())
        tokens = np.concatenate([tokens, more[~np.isin(more, tokens)]])
        _, first = np.unique(tokens, return_index=True)
        tokens = tokens[np.sort(first)]
    return tokens


def _descriptions(world: _World, rng: np.random.Generator) -> list[str]:
    """Each item's text: its title, then a sentence with two more words of its topic."""
    topic = world.topic_of_item()
    count = len(topic)
    words = rng.integers(WORDS_PER_TOPIC, size=(count, 2)).tolist()
    adjective = rng.integers(len(DESCRIPTION_ADJECTIVES), size=count).tolist()
    use = rng.integers(len(DESCRIPTION_USES), size=count).tolist()
    praise = rng.integers(len(DESCRIPTION_PRAISE), size=count).tolist()
    texts = []
    for item, title in enumerate(world.titles):
        vocabulary = world.vocabularies[topic[item]]
        first, second = (vocabulary[w] for w in words[item])
        texts.append(f"{title}. A {DESCRIPTION_ADJECTIVES[adjective[item]]} {first.lower()} and "
                     f"{second.lower()} piece {DESCRIPTION_USES[use[item]]}, "
                     f"{DESCRIPTION_PRAISE[praise[item]]}.")
    return texts


def _write_lines(path: Path, lines: list[str]) -> str:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(lines)
    return path.name
