"""`recbole`: RecBole atomic files, `NAME.inter` + `NAME.item` or `NAME.text`, or sequence files
already split into `NAME.train.inter`, `NAME.valid.inter`, `NAME.test.inter`.

The UniSRec layout is read too: split sequence files whose ids are integer indices, titles in
`NAME.text` (`item_id:token<TAB>text:token_seq`) keyed by the original item tokens (e.g. ASINs),
and the maps `NAME.item2index` and `NAME.user2index` (`token<TAB>index` lines, no header). The
indices are joined through the maps, so the prepared dataset's item and user ids are the
original tokens, and the titles are found by token."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from distill.data.readers.common import (Codes, Collector, GivenSplit, RawData, add_title, parse_timestamp,
                                        paused_gc, read_text, rename_fix, require_file, split_rows)
from distill.errors import DataError, give_hint

if TYPE_CHECKING:
    from distill.data.prepare import PrepareOptions

RECBOLE_SPLITS = {"train": "train", "val": "valid", "test": "test"}
LIST_SUFFIX = "_list"  # RecBole's name for a sequence field: item_id -> item_id_list
MAP_SUFFIXES = {"item": ".item2index", "user": ".user2index"}
INDEX = re.compile(r"[0-9]+")
SHOWN = 3  # ids quoted in a message


def read_recbole(input: Path, items: Path | None, options: PrepareOptions) -> RawData:
    """RecBole atomic files: `NAME.inter`, or the pre-split `NAME.{train,valid,test}.inter`;
    `input` is one of them or their folder."""
    inter, split = _recbole_inter(input)
    folder = inter.parent
    base = inter.name[: -len(f".{split}.inter")] if split else inter.stem
    maps = {kind: IndexMap.read(folder / f"{base}{suffix}") for kind, suffix in MAP_SUFFIXES.items()}
    items = items or _recbole_items(folder, base)
    titles, first_title = _recbole_titles(items, options, maps["item"])
    row = "{item}<TAB><title>"
    map_sources = [m.path.name for m in maps.values() if m is not None]
    if not split:
        raw = _recbole_interactions(inter, options, base).raw_data(titles, items, row)
        raw.sources += map_sources
        inter_ = raw.interactions
        if maps["item"] is not None:
            raw.item_names = maps["item"].tokens(raw.item_names, [(inter_.items, inter_.lines, inter.name)],
                                                 "item")
        if maps["user"] is not None:
            raw.user_names = maps["user"].tokens(raw.user_names, [(inter_.users, inter_.lines, inter.name)],
                                                 "user")
        _check_title_keys(raw, titles, first_title, items, inter, base, maps["item"])
        return raw
    files = _split_files(folder, base)
    item_codes, user_codes = Codes(), Codes()
    with paused_gc():
        given = {name: _recbole_sequences(path, options, item_codes, user_codes)
                 for name, path in zip(RECBOLE_SPLITS, files)}
    item_names, user_names = item_codes.names(), user_codes.names()
    parts = [given[name] for name in RECBOLE_SPLITS]
    if maps["item"] is not None:
        uses = [(np.concatenate([p.history, p.next]),
                 np.concatenate([np.repeat(p.lines, p.lengths), p.lines]), p.source) for p in parts]
        item_names = maps["item"].tokens(item_names, uses, "item")
    if maps["user"] is not None and all(p.users is not None for p in parts):
        user_names = maps["user"].tokens(user_names, [(p.users, p.lines, p.source) for p in parts], "user")
    raw = RawData(item_names=item_names, user_names=user_names, titles=titles,
                  titles_source=items.name, title_row=row,
                  sources=[p.name for p in files] + [items.name] + map_sources, given=given)
    _check_title_keys(raw, titles, first_title, items, files[0], base, maps["item"])
    return raw


# ---------------------------------------------------------------------------------------------
# Which files


def _recbole_inter(input: Path) -> tuple[Path, str | None]:
    """The interaction file to read and, for pre-split files, which split it is."""
    if input.is_dir():
        splits = sorted(p for p in input.glob("*.inter") if _split_of(p.name) and not p.name.startswith("."))
        candidates = splits or sorted(p for p in input.glob("*.inter") if not p.name.startswith("."))
        bases = sorted({_base(p.name) for p in candidates})
        if len(bases) != 1:
            found = ", ".join(p.name for p in candidates) or "none"
            raise DataError(f"expected the files of one RecBole dataset, NAME.inter or NAME.train.inter "
                            f"(with NAME.valid.inter and NAME.test.inter), found {found}; "
                            + give_hint("give the file itself as --input", "upload one dataset's files"))
        input = candidates[0]
    require_file(input, "recbole", "a NAME.inter file")
    return input, _split_of(input.name)


def _split_of(name: str) -> str | None:
    for suffix in RECBOLE_SPLITS.values():
        if name.endswith(f".{suffix}.inter"):
            return suffix
    return None


def _base(name: str) -> str:
    split = _split_of(name)
    return name[: -len(f".{split}.inter")] if split else name[: -len(".inter")]


def _split_files(folder: Path, base: str) -> list[Path]:
    """NAME.train.inter, NAME.valid.inter, NAME.test.inter: all three, or the missing one named."""
    files = [folder / f"{base}.{suffix}.inter" for suffix in RECBOLE_SPLITS.values()]
    present = [p for p in files if p.is_file()]
    for path in files:
        if not path.is_file():
            beside = present[0].name
            raise DataError(f"{path.name} is missing; "
                            + give_hint(f"put it beside {beside}", f"upload it with {beside}")
                            + f" (split RecBole files come as {', '.join(p.name for p in files)})")
    return files


def _recbole_items(folder: Path, base: str) -> Path:
    for suffix in (".item", ".text"):
        if (folder / f"{base}{suffix}").is_file():
            return folder / f"{base}{suffix}"
    raise DataError(f"{base}.inter: no titles; "
                    + give_hint(f"put {base}.item (a field containing 'title') or {base}.text next to it, "
                                f"or give the titles file with --items",
                                f"upload {base}.item (a field containing 'title') or {base}.text too"))


# ---------------------------------------------------------------------------------------------
# Index maps (UniSRec's NAME.item2index, NAME.user2index)


@dataclass
class IndexMap:
    """`token<TAB>index` lines: the original id of each integer index used in the .inter files."""

    path: Path
    token_of: dict[int, str]     # index -> original token
    line_of: dict[str, int]      # original token -> its line, for messages

    @classmethod
    def read(cls, path: Path) -> "IndexMap | None":
        if not path.is_file():
            return None
        token_of: dict[int, str] = {}
        line_of: dict[str, int] = {}
        index_line: dict[int, int] = {}
        for line, (token, index) in split_rows(path, "\t", 2):
            token, index = token.strip(), index.strip()
            if not token or not INDEX.fullmatch(index):
                raise DataError(f"{path.name} line {line}: {token + chr(9) + index!r} is not "
                                f"`token<TAB>index` (a non-empty token, a whole-number index); "
                                f"the file has one such line per id and no header")
            number = int(index)
            if token in line_of:
                raise DataError(f"{path.name} line {line}: token {token!r} appears again (first on line "
                                f"{line_of[token]}); each token must have one index")
            if number in index_line:
                raise DataError(f"{path.name} line {line}: index {number} appears again (first on line "
                                f"{index_line[number]}, token {token_of[number]!r}); each index must "
                                f"belong to one token")
            token_of[number], line_of[token], index_line[number] = token, line, line
        return cls(path=path, token_of=token_of, line_of=line_of)

    def tokens(self, names: np.ndarray, uses: list[tuple[np.ndarray, np.ndarray, str]],
               kind: str) -> np.ndarray:
        """The original token of each index in `names` (distinct ids as read from the .inter
        files). `uses` are (codes into `names`, their lines, file) for the error on an index the
        map lacks."""
        tokens = [self.token_of.get(int(n)) if INDEX.fullmatch(n) else None for n in names.tolist()]
        absent = [code for code, token in enumerate(tokens) if token is None]
        if absent:
            for codes, lines, source in uses:
                hits = np.flatnonzero(np.isin(codes, absent))
                if hits.size:
                    hit = hits[np.argmin(lines[hits])]
                    name = str(names[codes[hit]])
                    raise DataError(f"{source} line {lines[hit]}: {kind} {name!r} is not an index in "
                                    f"{self.path.name}; the ids of the .inter files must be the indices "
                                    f"of {self.path.name} (add a line `<token><TAB>{name}` to it, or "
                                    f"prepare the files again with the same map)")
        return np.array(tokens, dtype=str)


# ---------------------------------------------------------------------------------------------
# Parsing


def _recbole_header(path: Path) -> tuple[list[str], str]:
    """Field names without their RecBole types (`item_id:token` -> `item_id`), and the text."""
    text = read_text(path)
    header = text.lstrip().split("\n", 1)[0].rstrip("\r")
    return [field.split(":", 1)[0].strip() for field in header.split("\t")], text


def _field(path: Path, header: list[str], name: str, option: str) -> int:
    """Position of field `name`; `option` is the option field that sets the name."""
    if name not in header:
        raise DataError(f"{path.name}: no field {name!r} (fields: {', '.join(header)}); "
                        f"{rename_fix(option)}")
    return header.index(name)


def _data_rows(path: Path, header: list[str], text: str) -> Iterator[tuple[int, list[str]]]:
    rows = split_rows(path, "\t", len(header), text)
    next(rows)  # the header line
    return rows


def _recbole_interactions(path: Path, options: PrepareOptions, base: str) -> Collector:
    header, text = _recbole_header(path)
    item_field = options.item_col
    if item_field + LIST_SUFFIX in header:
        raise DataError(f"{path.name}: holds sequences ({item_field}{LIST_SUFFIX}) but no split; "
                        + give_hint(f"give {base}.train.inter with {base}.valid.inter and {base}.test.inter "
                                    f"beside it instead",
                                    f"upload {base}.train.inter, {base}.valid.inter and {base}.test.inter "
                                    f"instead"))
    options_fields = ["user_col", "item_col", "time_col"]
    with_ratings = options.min_rating is not None
    if with_ratings:
        options_fields.append("rating_col")
    fields = [_field(path, header, getattr(options, f), f) for f in options_fields]
    collect = Collector(path, with_ratings)
    with paused_gc():
        for line, row in _data_rows(path, header, text):
            collect.add(line, *(row[k].strip() for k in fields))
    return collect


def _recbole_sequences(path: Path, options: PrepareOptions, item_codes: Codes,
                       user_codes: Codes) -> GivenSplit:
    """`item_id_list` (space-separated, oldest first) + target `item_id`. A user field
    (`user_id` or `session_id`) and a timestamp are used when present; without them each row is
    its own user and the row order is the time."""
    header, text = _recbole_header(path)
    user_field, item_field, time_field = options.user_col, options.item_col, options.time_col
    history_at = _field(path, header, item_field + LIST_SUFFIX, "item_col")
    next_at = _field(path, header, item_field, "item_col")
    user_at = next((header.index(f) for f in (user_field, "session_id") if f in header), None)
    time_at = header.index(time_field) if time_field in header else None
    history: list[int] = []
    lengths, targets, users, times, lines = [], [], [], [], []
    for line, row in _data_rows(path, header, text):
        items = row[history_at].split()
        target = row[next_at].strip()
        if not items or not target:
            raise DataError(f"{path.name} line {line}: empty {item_field}{LIST_SUFFIX} or "
                            f"{item_field}; every instance needs a history and a target")
        history.extend(map(item_codes, items))
        lengths.append(len(items))
        targets.append(item_codes(target))
        if user_at is not None:
            users.append(user_codes(row[user_at].strip()))
        if time_at is not None:
            times.append(parse_timestamp(row[time_at], path, line))
        lines.append(line)
    if not lines:
        raise DataError(f"{path.name}: has a header but no data rows")
    return GivenSplit(history=np.array(history, dtype=np.int64), lengths=np.array(lengths, dtype=np.int64),
                      next=np.array(targets, dtype=np.int64),
                      users=np.array(users, dtype=np.int64) if user_at is not None else None,
                      times=np.array(times, dtype=np.int64) if time_at is not None else None,
                      lines=np.array(lines, dtype=np.int64), source=path.name)


def _recbole_titles(path: Path, options: PrepareOptions,
                    item_map: IndexMap | None) -> tuple[dict[str, str], tuple[str, int] | None]:
    """Titles from a `.item` file (the `title_col` field, `title`, `movie_title`, or any field
    with "title" in its name) or a `.text` file (`text` field, kept whole). With an item map the
    file is keyed by the original tokens, each of which the map must hold. Returns the titles and
    the first row's (item, line)."""
    require_file(path, "recbole", "a NAME.item or NAME.text file")
    header, text = _recbole_header(path)
    preferred = [options.title_col, "title", "movie_title"]
    preferred += [f for f in header if "title" in f.lower()] + ["text"]
    title_name = next((f for f in preferred if f in header), None)
    if title_name is None:
        raise DataError(f"{path.name}: no title field (fields: {', '.join(header)}); add a "
                        f"title:token_seq field, or {rename_fix('title_col')}")
    item_at = _field(path, header, options.item_col, "item_col")
    title_at = header.index(title_name)
    titles: dict[str, str] = {}
    first = None
    for line, row in _data_rows(path, header, text):
        item = row[item_at].strip()
        if item_map is not None and item not in item_map.line_of:
            raise DataError(f"{path.name} line {line}: item {item!r} is not a token of {item_map.path.name}; "
                            f"{path.name} is keyed by the original item tokens, each listed in "
                            f"{item_map.path.name} with its index (add the line `{item}<TAB><index>` there, "
                            f"or remove this row)")
        add_title(titles, item, row[title_at], path, line)
        first = first or (item, line)
    return titles, first


def _check_title_keys(raw: RawData, titles: dict[str, str], first: tuple[str, int] | None, items: Path,
                      inter: Path, base: str, item_map: IndexMap | None) -> None:
    """Titles keyed by other ids than the .inter files' (UniSRec's tokens where the .inter files
    hold indices, without the map that joins them): say so, rather than "no title" for every item."""
    if item_map is not None or first is None or not len(raw.item_names):
        return
    names = raw.item_names.tolist()
    if any(name in titles for name in names):
        return
    shown = ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
    raise DataError(f"{items.name} line {first[1]}: item {first[0]!r} is not an item id of {inter.name} "
                    f"(ids there: {shown}), and no title matches those ids; if {inter.name} holds indices, "
                    + give_hint(f"put {base}.item2index (lines token<TAB>index) beside it",
                                f"upload {base}.item2index (lines token<TAB>index) too")
                    + f", else key {items.name} by the same item ids")
