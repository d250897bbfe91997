"""Hyperparameter sweeps of the distilled student: a grid or random points, each trained once, the
best chosen on val.

A *point* is a dict of flat `TrainConfig` option names (`student`, `lam`, `ed_weight`, `epochs`,
...) to values, plus `budget`: the teacher's budget at that point (docs/method.md §2.6), cut from a
teacher computed with a budget at least as large (`distill.teacher.budget.restrict`, written to
`OUT/teacher-point-<i>/`), so a budget curve costs one teacher; a sweep trains one distilled student per point, `{**base_options, **point}`, from
one teacher computed beforehand, into `OUT/point-<i>/`, and writes `OUT/sweep.json`. The best
point is chosen on **val** (`best_on_val`); test is reported beside it, never used to choose.

The functions that build points (`expand_grid`, `random_points`, `parse_grid_args`) and
`best_on_val` are pure; `run_sweep` trains. The command line (`python -m distill sweep`) and the
web service share them. Every bad input is a `distill.errors.ConfigError` (or `TeacherError`)
whose message names the key or point and the fix.

`OUT/sweep.json`::

    {"points": [{"index": i, "point": {...}, "dir": "point-<i>",
                 "val": {metric: value}, "test": {metric: value},
                 "lam": lambda_d, "best_epoch": e, "stopped_by": "patience" | "epochs",
                 # several seeds: val/test are the means over seeds; lam, best_epoch and
                 # stopped_by lists in seed order; plus
                 "seeds": [s, ...], "uncertainty": {split: {metric: t_interval}}}, ...],
     "best": index of the best point on val, "selected_on": "val", "metric": "ndcg@20",
     "seeds": [s, ...], "base_options": {...}}
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from distill.config import TrainConfig, check_candidate_k
from distill.errors import ConfigError, TeacherError

MAX_POINTS = 64
DEFAULT_METRIC = "ndcg@20"
SWEEP_FILE = "sweep.json"


# ----------------------------------------------------------------------------- building points

def expand_grid(grid: dict[str, list]) -> list[dict]:
    """The cartesian product of `grid` ({option: [values]}) as a list of points, in a fixed order:
    the first key varies slowest, each key's values in the order given. At most MAX_POINTS points;
    every value list non-empty and without repeats."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("the grid is empty: give at least one option and its values, e.g. --grid lam=0,0.3,0.7")
    size = 1
    for key, values in grid.items():
        _check_key(key)
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"grid option {key}: expected a list of values, got {type(values).__name__} "
                              f"{values!r}; e.g. --grid {key}=A,B")
        if not values:
            raise ConfigError(f"grid option {key}: no values; give at least one, e.g. --grid {key}=A,B")
        _check_distinct(f"grid option {key}", values)
        size *= len(values)
    if size > MAX_POINTS:
        counts = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
        raise ConfigError(f"the grid has {size} points ({counts}); at most {MAX_POINTS}: give fewer values, "
                          "or sample some with --random N --space FILE")
    keys = list(grid)
    return [dict(zip(keys, combination)) for combination in itertools.product(*grid.values())]


def random_points(space: dict[str, list | dict], n: int, seed: int) -> list[dict]:
    """`n` distinct points drawn from `space` with `numpy.random.default_rng(seed)` (the same space,
    n and seed give the same points). Each option of `space` is one of:

    - a list: its values are the choices, drawn uniformly (the values themselves are kept);
    - {"low": a, "high": b}: a float uniform in [a, b);
    - {"low": a, "high": b, "log": true}: a float log-uniform in [a, b) (0 < a < b);
    - {"low": a, "high": b, "int": true}: an int uniform in a..b, both included.

    Options are drawn in the order of `space` for each point in turn; a point equal to an earlier
    one is drawn again. 1 <= n <= MAX_POINTS, and no more than the space holds."""
    if not isinstance(space, dict) or not space:
        raise ConfigError('the random space is empty: give {"option": [choices] or {"low": a, "high": b}, ...}')
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_POINTS:
        raise ConfigError(f"--random {n}: give a number of points from 1 to {MAX_POINTS}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"random seed {seed!r}: expected a whole number >= 0")
    samplers = {key: _sampler(key, spec) for key, spec in space.items()}
    size = math.prod(sampler[1] for sampler in samplers.values())
    if size < n:
        raise ConfigError(f"the random space holds only {size} distinct points, fewer than the {n} asked: "
                          f"ask for at most {size}, or widen the space")
    rng = np.random.default_rng(int(seed))
    points: list[dict] = []
    for _ in range(1000 * n):
        point = {key: draw(rng) for key, (draw, _) in samplers.items()}
        if point not in points:
            points.append(point)
            if len(points) == n:
                return points
    raise ConfigError(f"could not draw {n} distinct points from the random space; widen it or ask for fewer")


def _sampler(key, spec) -> tuple[Callable[[np.random.Generator], object], float]:
    """(draw one value, how many distinct values the option has: math.inf for a float range)."""
    _check_key(key)
    where = f"random space option {key}"
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(f"{where}: no choices; give at least one value")
        _check_distinct(where, spec)
        choices = list(spec)
        return (lambda rng: choices[int(rng.integers(len(choices)))]), len(choices)
    if not isinstance(spec, dict):
        raise ConfigError(f'{where}: expected a list of choices or {{"low": a, "high": b}}, got {spec!r}')
    unknown = set(spec) - {"low", "high", "log", "int"}
    if unknown or not {"low", "high"} <= set(spec):
        raise ConfigError(f'{where}: a range is {{"low": a, "high": b}}, optionally with "log": true or '
                          f'"int": true; got keys {sorted(spec)}')
    low, high = spec["low"], spec["high"]
    log, integer = spec.get("log", False), spec.get("int", False)
    if not isinstance(log, bool) or not isinstance(integer, bool):
        raise ConfigError(f'{where}: "log" and "int" are true or false')
    if log and integer:
        raise ConfigError(f'{where}: "log" and "int" do not combine; list the integers as choices, e.g. [16, 32, 64]')
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {name}={value!r} is not a finite number")
    if integer:
        if not (float(low).is_integer() and float(high).is_integer()) or low > high:
            raise ConfigError(f"{where}: an int range needs whole numbers low <= high, got {low}..{high}")
        low, high = int(low), int(high)
        return (lambda rng: int(rng.integers(low, high, endpoint=True))), high - low + 1
    if not low < high:
        raise ConfigError(f"{where}: low={low} must be less than high={high}")
    if log:
        if low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got low={low}")
        a, b = math.log(low), math.log(high)
        return (lambda rng: float(math.exp(rng.uniform(a, b)))), math.inf
    return (lambda rng: float(rng.uniform(low, high))), math.inf


def parse_grid_args(items: list[str]) -> dict:
    """`["lam=0,0.3,0.7", "student=sasrec,dros"]` (repeated `--grid KEY=V,V,...`) ->
    `{"lam": [0.0, 0.3, 0.7], "student": ["sasrec", "dros"]}`. A value that reads as an int is an
    int, as a finite float a float, anything else a str; a list of numbers with a float in it is
    all floats. Each key once; values separated by commas, none empty."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. --grid lam=0,0.3,0.7")
        if key in grid:
            raise ConfigError(f"--grid {item!r}: {key} is already in the grid; give all its values in one "
                              f"--grid {key}=V1,V2,...")
        parts = [part.strip() for part in text.split(",")]
        if any(not part for part in parts):
            raise ConfigError(f"--grid {item!r}: an empty value; separate the values with single commas, "
                              f"e.g. --grid {key}=A,B")
        values = [_number(part) for part in parts]
        if all(isinstance(v, (int, float)) for v in values) and any(isinstance(v, float) for v in values):
            values = [float(v) for v in values]
        grid[key] = values
    return grid


def _number(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _check_key(key) -> None:
    if not isinstance(key, str) or not key:
        raise ConfigError(f"option name {key!r}: expected a training option's name, e.g. lam")


def _check_distinct(where: str, values) -> None:
    for i, value in enumerate(values):
        for earlier in values[:i]:
            if value == earlier:
                raise ConfigError(f"{where}: the value {value!r} appears twice; give each value once")


# ----------------------------------------------------------------------------- choosing

def best_on_val(results: list[dict], metric: str = DEFAULT_METRIC) -> int:
    """The position in `results` of the point with the highest `val[metric]` (ties: the earliest).
    Results without val (or without that metric, or NaN) are skipped; test is never looked at."""
    best, best_value = None, -math.inf
    for i, result in enumerate(results):
        val = result.get("val") if isinstance(result, dict) else None
        value = val.get(metric) if isinstance(val, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        if best is None or value > best_value:
            best, best_value = i, value
    if best is None:
        raise ConfigError(f"no point has a val {metric} to choose on ({len(results)} results); "
                          "train them first, or choose another metric (e.g. ndcg@20)")
    return best


def check_metric(metric: str) -> str:
    """`metric` when it is one every run reports (hr@K, ndcg@K or mrr@K for K in evaluate.CUTOFFS)."""
    from distill.evaluate import CUTOFFS
    name, _, k = str(metric).partition("@")
    if name not in ("hr", "ndcg", "mrr") or not k.isdigit() or int(k) not in CUTOFFS:
        raise ConfigError(f"metric {metric!r}: use hr@K, ndcg@K or mrr@K with K one of "
                          f"{', '.join(map(str, CUTOFFS))}, e.g. ndcg@20")
    return f"{name}@{int(k)}"


# ----------------------------------------------------------------------------- running

def point_label(point: dict) -> str:
    """`lam=0.3 student=dros`: a point as the command line and the logs show it."""
    return " ".join(f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={value}"
                    for key, value in point.items())


def point_dir(out: str | Path, index: int) -> Path:
    """Where `run_sweep` trains point `index`."""
    return Path(out) / f"point-{index}"


def run_sweep(dataset, teacher_dir: str | Path | None, points: list[dict], base_options: dict, out: str | Path, *,
              seeds: Sequence[int] = (0,), metric: str = DEFAULT_METRIC, log: Callable[[str], None] | None = None,
              callbacks=None) -> dict:
    """Train one distilled student per point and write `out/sweep.json` (the module's docstring
    shows it); return what it holds.

    `dataset` is a PreparedDataset (or its directory); `teacher_dir` the teacher's artifacts,
    computed once beforehand (None trains plain students: a sweep of training options only). Point
    i's config is `TrainConfig.from_options({**base_options, **point})`; with one seed its run
    directory is `out/point-<i>/` (`recipe.ensure_student`), with several `out/point-<i>/seed-<s>/`
    (`recipe.train_role`: lam=auto picks one lambda_d on the seeds' mean val) and their mean and
    t interval in `out/point-<i>/seeds.json`. The seeds
    are `seeds` only: `seed` in `base_options` or a point is refused. Every point's config (and
    its candidate_k against the teacher's k) is checked before anything is trained, and so is any
    run already in a point's directory: a rerun reuses the complete ones (resumable) but refuses
    one trained with another config. `callbacks` (distill.train.Callbacks) get every epoch, the
    progress over the whole sweep and the cancel checks."""
    from distill.data import PreparedDataset
    from distill.io import write_json
    from distill.recipe import check_seeds, ensure_student, seed_summary, train_role
    seeds = check_seeds(seeds)
    metric = check_metric(metric)
    base_options = dict(base_options or {})
    if not isinstance(dataset, PreparedDataset):
        dataset = PreparedDataset.load(dataset)
    teacher_dir = Path(teacher_dir) if teacher_dir is not None else None
    configs = _check_points(points, base_options, seeds, dataset, teacher_dir, Path(out))

    results = []
    for i, (point, config) in enumerate(zip(points, configs)):
        where = point_dir(out, i)
        if log is not None:
            complete = all((run / "metrics.json").is_file() for run in _run_dirs(where, seeds))
            log(f"point {i} ({i + 1} of {len(points)}): {point_label(point)}{' (complete: reused)' * complete}")
        shared = _share(callbacks, i, len(points))
        teacher = teacher_dir if "budget" not in point else _budget_teacher(dataset, teacher_dir, point["budget"],
                                                                            Path(out) / f"teacher-point-{i}")
        if len(seeds) == 1:
            m = ensure_student(dataset, config.replace(seed=seeds[0]), teacher, where, shared, log=log)
            entry = {"val": m["val"], "test": m["test"], "lam": m["lam"], "best_epoch": m["best_epoch"],
                     "stopped_by": m.get("stopped_by")}
        else:
            _, runs = train_role(dataset, config, teacher, where, seeds, shared, log=log)
            summary = seed_summary(runs)
            write_json(where / "seeds.json", summary)
            entry = {"val": summary["metrics"]["val"], "test": summary["metrics"]["test"],
                     "uncertainty": summary["uncertainty"], "seeds": seeds, "lam": [m["lam"] for m in runs],
                     "best_epoch": [m["best_epoch"] for m in runs], "stopped_by": [m.get("stopped_by") for m in runs]}
        results.append({"index": i, "point": dict(point), "dir": where.name, **entry})
    sweep = {"points": results, "best": best_on_val(results, metric), "selected_on": "val", "metric": metric,
             "seeds": seeds, "base_options": base_options}
    write_json(Path(out) / SWEEP_FILE, sweep)
    return sweep


def _budget_teacher(dataset, teacher_dir: Path, budget, out: Path) -> Path:
    """The teacher cut to `budget` at `out` (reused when there)."""
    from distill.teacher.artifacts import TeacherArtifacts
    from distill.teacher.budget import restrict
    if not (out / "teacher.json").is_file():
        restrict(TeacherArtifacts.load(teacher_dir, dataset), budget).save(out)
    return out


def _check_budget_point(point: dict, dataset, teacher_dir: Path | None) -> None:
    from distill.io import read_json
    from distill.teacher.budget import budget_count
    if teacher_dir is None:
        raise ConfigError("budget is the teacher's: give the teacher's directory")
    record = read_json(teacher_dir / "teacher.json").get("budget")
    if record is None:
        raise ConfigError("budget: the teacher ranked every instance without a budget; compute it with --budget at "
                          "the largest budget of the sweep (e.g. --budget 1.0) so that smaller ones are cut from it")
    count = budget_count(point["budget"], len(dataset.train))
    if count > record["ranked"]:
        raise ConfigError(f"budget {point['budget']} ranks {count:,} instances, above the {record['ranked']:,} the "
                          "teacher ranked; compute the teacher at the largest budget of the sweep")


def _check_points(points, base_options: dict, seeds: list[int], dataset, teacher_dir: Path | None,
                  out: Path) -> list[TrainConfig]:
    """Every point's config, or the first problem: a bad option, candidate_k over the teacher's k,
    a teacher of another dataset, a run of another config already in a point's directory."""
    if not isinstance(points, (list, tuple)) or not points:
        raise ConfigError("the sweep has no points: give a grid (--grid KEY=V1,V2) or --random N --space FILE")
    if len(points) > MAX_POINTS:
        raise ConfigError(f"the sweep has {len(points)} points; at most {MAX_POINTS}")
    if "seed" in base_options:
        raise ConfigError("seed is set by the sweep's seeds (--seeds N trains seeds 0..N-1): drop seed from the options")
    teacher_k = _teacher_k(dataset, teacher_dir) if teacher_dir is not None else None
    configs = []
    for i, point in enumerate(points):
        if not isinstance(point, dict) or not point:
            raise ConfigError(f"sweep point {i}: expected a non-empty {{option: value}} dict, got {point!r}")
        where = f"sweep point {i} ({point_label(point)})"
        if "seed" in point:
            raise ConfigError(f"{where}: seed is not a sweep option; train several seeds per point with --seeds N")
        for j in range(i):
            if points[j] == point:
                raise ConfigError(f"{where}: the same as point {j}; give each point once")
        try:
            if "budget" in point:
                _check_budget_point(point, dataset, teacher_dir)
            config = TrainConfig.from_options({**base_options, **{k: v for k, v in point.items() if k != "budget"}})
            if teacher_k is not None and (config.lam_auto or config.lam_value > 0):
                check_candidate_k(config, teacher_k)
            if teacher_dir is None and config.lam_auto:
                raise ConfigError("lam=auto needs a teacher to choose lambda_d against; give the teacher's directory")
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for seed, run in zip(seeds, _run_dirs(point_dir(out, i), seeds)):
            _check_existing(run, config.replace(seed=seed), where)
        configs.append(config)
    return configs


def _run_dirs(where: Path, seeds: list[int]) -> list[Path]:
    """A point's run directories, one per seed: `where` itself for one seed, else its seed-<s>/."""
    from distill.recipe import seed_dir
    return [where] if len(seeds) == 1 else [seed_dir(where, s) for s in seeds]


def _teacher_k(dataset, teacher_dir: Path) -> int:
    """The teacher's k from its teacher.json, after checking it belongs to `dataset` (the full
    check is TeacherArtifacts.load's, when the first point trains)."""
    from distill.io import read_json
    from distill.teacher.artifacts import META_FILE
    meta_file = teacher_dir / META_FILE
    if not meta_file.is_file():
        raise TeacherError(f"{teacher_dir}: not teacher artifacts (no {META_FILE}); compute the teacher first, "
                           "e.g. python -m distill teacher titles --data DATA --out TDIR")
    meta = read_json(meta_file)
    if meta.get("dataset_hash") != dataset.content_hash:
        raise TeacherError(f"{meta_file}: the teacher was computed for another dataset (hash "
                           f"{str(meta.get('dataset_hash'))[:12]}, this prepared dataset is {dataset.content_hash[:12]}); "
                           "run the teacher on this prepared dataset")
    if meta.get("limit") is not None:
        raise TeacherError(f"{meta_file}: computed with --limit {meta['limit']} (a smoke run); training needs every "
                           "instance: run the teacher again without --limit")
    return int(meta["k"])


# Options that change where a run is computed, not what it computes: a rerun may differ in them.
_PLACE_OPTIONS = ("device",)


def _check_existing(run: Path, config: TrainConfig, where: str) -> None:
    """Refuse reusing `run` when it holds a complete run of another config than `config`."""
    from distill.io import read_json
    if not (run / "metrics.json").is_file():
        return
    stored = read_json(run / "metrics.json").get("config") or {}
    expected = json.loads(json.dumps(config.to_dict()))
    differ = sorted(key for key in expected if key not in _PLACE_OPTIONS and stored.get(key) != expected[key])
    if differ:
        shown = ", ".join(f"{key} {stored.get(key)!r} there, {expected[key]!r} now" for key in differ[:4])
        raise ConfigError(f"{where}: {run} holds a run of another config ({shown}); sweep into a new --out, "
                          "or delete that directory to train it again")


def _share(callbacks, done: int, total: int):
    """`callbacks` with its progress mapped to the `done`-th of `total` points."""
    if callbacks is None:
        return None
    from distill.train import Callbacks
    return Callbacks(on_epoch=callbacks.on_epoch, should_cancel=callbacks.should_cancel,
                     on_progress=lambda f: callbacks.progress((done + f) / total))


def format_table(sweep: dict) -> str:
    """The points of a sweep.json as a table (val and test ndcg@20 / hr@20), the best marked `*`."""
    keys = list(dict.fromkeys(key for entry in sweep["points"] for key in entry["point"]))
    columns = ["", "point", *keys, "val ndcg@20", "val hr@20", "test ndcg@20", "test hr@20", "lambda_d", "best epoch"]

    def cell(value) -> str:
        if isinstance(value, list):
            return ",".join(cell(v) for v in value)
        if isinstance(value, float):
            return f"{value:g}"
        return "-" if value is None else str(value)

    rows = []
    for entry in sweep["points"]:
        val, test = entry.get("val") or {}, entry.get("test") or {}
        rows.append(["*" if entry["index"] == sweep["best"] else "", str(entry["index"]),
                     *(cell(entry["point"].get(key)) for key in keys),
                     *(f"{split.get(name, float('nan')):.4f}" for split in (val, test) for name in ("ndcg@20", "hr@20")),
                     cell(entry.get("lam")), cell(entry.get("best_epoch"))])
    widths = [max(len(row[c]) for row in [columns, *rows]) for c in range(len(columns))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths)).rstrip() for row in [columns, *rows]]
    best = sweep["points"][sweep["best"]]
    lines.append(f"* best on {sweep['selected_on']} {sweep['metric']}: point {best['index']} ({point_label(best['point'])}); "
                 "test is shown, never used to choose")
    return "\n".join(lines)

