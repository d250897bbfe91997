"""One configuration schema for training, shared by the command line, the API and the UI.

`--set key=value` on the command line, the `distill`/`train` objects of the REST API and the
dashboard's form all become a `TrainConfig` through `TrainConfig.from_options`, which rejects
unknown keys and values of the wrong type with a message that names the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields

from distill.errors import ConfigError

STUDENTS = ("gru4rec", "sasrec", "dros", "caser")
LAM_GRID = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)

# `preset=reference`: the reference code's behaviours (docs/method.md §6 "Reproducing the reference
# code") and its lambda_d / ed_weight, applied by `TrainConfig.from_options` to every option not
# given explicitly. Its other hyperparameters (hidden 64, dropout 0.1, lr 1e-3, batch 256, K 10,
# gammas 0.3/0.5/0.1) are already our defaults; epochs, weight_decay and seed are the run's own.
REFERENCE_PRESET = {
    "selection": "test",               # selects the best epoch on test (a leak)
    "official_negative": True,         # log sigmoid(1 - y_neg) in the ranking-distillation term
    "dro_weighting": "official",       # the broadcast that loses the per-instance weight (DROS)
    "confidence": "candidate",         # exp(-d) per candidate
    "projector": "linear",             # one Linear(D, d)
    "distill_precision": "fp32",       # the teacher table and projection in fp32
    "eval_mode": "train",              # never calls model.eval(): dropout on in val/test
    "batches": "with_replacement",     # each batch an independent sample of the training rows
    "lam": "0.8",
    "ed_weight": 0.2,
}
PRESETS = {"none": {}, "reference": REFERENCE_PRESET}


# Caser's horizontal filters: at most this many heights, each at most the longest history window
# a prepared dataset can have (PrepareOptions.max_len's bound).
MAX_FILTER_SIZES = 10
MAX_FILTER_HEIGHT = 200


def _train(default, help_: str, bounds: tuple[int, int] | None = None):
    """A `train` section option: its default, its one-line help (shown by the CLI, API and form) and,
    for one with a resource cost, its inclusive bounds."""
    return field(default=default, metadata={"help": help_, "section": "train", "bounds": bounds})


def _distill(default, help_: str, bounds: tuple[int, int] | None = None):
    """A `distill` section option (the distillation terms): default, one-line help and bounds."""
    return field(default=default, metadata={"help": help_, "section": "distill", "bounds": bounds})


@dataclass
class TrainConfig:
    # --- model (docs/method.md §3, §6)
    student: str = _train("sasrec", 'gru4rec | sasrec | dros | caser')
    hidden: int = _train(64, 'item embedding / hidden size d', (1, 1024))
    dropout: float = _train(0.1, 'dropout rate in every student')
    num_blocks: int = _train(1, 'SASRec self-attention blocks', (1, 8))
    num_heads: int = _train(1, 'SASRec attention heads', (1, 16))
    gru_layers: int = _train(1, 'GRU4Rec recurrent layers', (1, 8))
    num_filters: int = _train(16, 'Caser filters per horizontal size', (1, 256))
    filter_sizes: str = _train("2,3,4", 'Caser horizontal filter heights')
    # --- optimisation and protocol (docs/method.md §6)
    epochs: int = _train(200, 'maximum epochs; early stopping usually ends sooner', (1, 1000))
    patience: int = _train(10, 'epochs without a val NDCG@20 gain before stopping', (0, 1000))
    batch_size: int = _train(256, 'training instances per step', (1, 8192))
    lr: float = _train(1e-3, 'Adam learning rate')
    weight_decay: float = _train(0.0, 'Adam weight decay, tuned in {0, 1e-7..1e-4}')
    seed: int = _train(0, 'seeds sampling, initialisation and dropout')
    selection: str = _train("val", 'split that picks the best epoch; `test` only to reproduce the reference code')
    eval_batch: int = _train(256, 'instances per evaluation batch (256 keeps the score block in cache)',
                             (1, 8192))
    device: str = _train("auto", 'auto | cpu | cuda | cuda:N')
    eval_mode: str = _train("eval", 'eval | train: score val/test with dropout on, as the reference code (seeded, repeatable)')
    batches: str = _train("permutation", 'permutation (every row once per epoch) | with_replacement: batches drawn '
                                         'independently, as the reference code')
    preset: str = _train("none", 'none | reference: every reference-code behaviour at once; an option given '
                                 'explicitly wins')
    # --- DRO loss (docs/method.md §3); `dros` defaults alpha to 1.0
    alpha: float | None = _train(None, 'weight of the DRO loss; None = 1.0 for dros, 0 otherwise')
    dro_beta: float = _train(1.0, 'robust radius beta of the DRO loss')
    # --- importance-aware ranking distillation (docs/method.md §4)
    lam: str = _distill("0.7", 'lambda_d, a number or `auto` (picked on val from LAM_GRID)')
    candidate_k: int = _distill(10, 'teacher candidates used per instance (K)', (1, 1000))
    position_beta: float = _distill(1.0, 'beta of the position weight exp(-k/beta)')
    gamma_position: float = _distill(0.3, 'g_p')
    gamma_confidence: float = _distill(0.5, 'g_c')
    gamma_consistency: float = _distill(0.1, 'g_o')
    use_position: bool = _distill(True, 'switch the position weight on or off')
    use_confidence: bool = _distill(True, 'switch the confidence weight on or off')
    use_consistency: bool = _distill(True, 'switch the consistency weight on or off')
    confidence: str = _distill("candidate", 'candidate (reference code) | paper (one weight per instance)')
    confidence_beta: float = _distill(1.0, 'paper mode: weight exp(-(d - min d) / confidence_beta)')
    official_negative: bool = _distill(False, "reference code's log sigmoid(1 - y_neg) instead of log sigmoid(-y_neg)")
    dro_weighting: str = _distill("instance", "instance | official (the reference code's broadcast weighting)")
    # --- collaborative embedding distillation (docs/method.md §5)
    ed_weight: float = _distill(0.3, 'weight of the projected teacher embedding; 0 switches it off')
    projector: str = _distill("linear", 'linear (reference code) | mlp')
    distill_precision: str = _distill("auto", 'auto | bf16 | fp32: teacher table + projection, and the no-grad top-K of the consistency weight')

    def __post_init__(self) -> None:
        self.validate()

    # --- derived values
    @property
    def dro_alpha(self) -> float:
        if self.alpha is not None:
            return float(self.alpha)
        return 1.0 if self.student == "dros" else 0.0

    @property
    def lam_auto(self) -> bool:
        return self.lam == "auto"

    @property
    def lam_value(self) -> float:
        if self.lam_auto:
            raise ConfigError("lam=auto has no single value; the trainer resolves it on val")
        return float(self.lam)

    def validate(self) -> None:
        choices = {
            "student": STUDENTS,
            "selection": ("val", "test"),
            "confidence": ("candidate", "paper"),
            "dro_weighting": ("instance", "official"),
            "projector": ("linear", "mlp"),
            "distill_precision": ("auto", "bf16", "fp32"),
            "eval_mode": ("eval", "train"),
            "batches": ("permutation", "with_replacement"),
            "preset": tuple(PRESETS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if self.lam != "auto":
            try:
                lam = float(self.lam)
            except ValueError:
                raise ConfigError(f"lam={self.lam!r}: expected a number >= 0 or `auto`") from None
            if lam < 0:
                raise ConfigError(f"lam={self.lam!r}: must be >= 0")
        for spec in fields(self):
            bounds = spec.metadata["bounds"]
            value = getattr(self, spec.name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise ConfigError(f"{spec.metadata['section']} option {spec.name}={value!r} is out of range: "
                                  f"{bounds[0]}..{bounds[1]}")
        for name in ("lr", "dro_beta", "position_beta", "confidence_beta"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be > 0")
        for name in ("weight_decay", "ed_weight", "gamma_position", "gamma_confidence", "gamma_consistency"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout={self.dropout!r}: must be in [0, 1)")
        if self.alpha is not None and self.alpha < 0:
            raise ConfigError(f"alpha={self.alpha!r}: must be >= 0")
        if self.hidden % self.num_heads:
            raise ConfigError(f"hidden={self.hidden} must be divisible by num_heads={self.num_heads}")
        try:
            sizes = self.filter_size_list
        except ValueError:
            raise ConfigError(f"filter_sizes={self.filter_sizes[:40]!r}: expected comma-separated integers like "
                              "2,3,4") from None
        if not sizes or len(sizes) > MAX_FILTER_SIZES or not all(1 <= h <= MAX_FILTER_HEIGHT for h in sizes):
            raise ConfigError(f"train option filter_sizes={self.filter_sizes[:40]!r} is out of range: 1 to "
                              f"{MAX_FILTER_SIZES} heights, each 1..{MAX_FILTER_HEIGHT}")

    @property
    def filter_size_list(self) -> list[int]:
        return [int(part) for part in self.filter_sizes.split(",") if part.strip()]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_options(cls, options: dict, base: "TrainConfig | None" = None) -> "TrainConfig":
        """Build a config from {name: value}; values may be strings (`--set`) or JSON values (API).

        A `preset` is resolved here: its values replace every option that `options` does not name
        (an explicit option wins over the preset), and the config keeps the effective values, so
        a run's config.json shows them and reads back to the same config. Over a `base`, the
        preset is applied only when `options` names it (a base is already resolved).
        """
        known = {f.name: f for f in fields(cls)}
        values = dataclasses.asdict(base) if base is not None else {}
        for key, raw in options.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known options: {', '.join(known)}"
                raise ConfigError(f"unknown option {key!r}{hint}")
            values[key] = _coerce(key, known[key].type, raw)
        preset = values.get("preset", "none")
        if preset not in PRESETS:
            raise ConfigError(f"preset={preset!r}: expected one of {', '.join(PRESETS)}")
        if base is None or "preset" in options:
            values.update({key: value for key, value in PRESETS[preset].items() if key not in options})
        return cls(**values)


def check_candidate_k(config: TrainConfig, teacher_k: int) -> None:
    """Refuse a distillation that would read more teacher candidates per instance (`candidate_k`)
    than the teacher lists (its `k`), before anything is computed."""
    if config.candidate_k > teacher_k:
        raise ConfigError(f"distill option candidate_k={config.candidate_k} is more than the teacher's k={teacher_k}: "
                          f"set candidate_k <= {teacher_k}, or give the teacher k >= {config.candidate_k}")


def resolve_device(name: str):
    """`auto` -> cuda when present, else cpu; an explicit cuda device must exist."""
    import torch
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r}: CUDA is not available on this machine; use device=cpu or auto")
    return torch.device(name)


def parse_set_options(pairs: list[str]) -> dict[str, str]:
    """`["lam=auto", "epochs=3"]` -> `{"lam": "auto", "epochs": "3"}`."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set lam=auto")
        options[key.strip()] = value.strip()
    return options


def _coerce(name: str, annotation: str, raw):
    kind = annotation.replace(" ", "")
    if raw is None and "None" in kind:
        return None
    if isinstance(raw, str) and raw.lower() in ("none", "null") and "None" in kind:
        return None
    try:
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind.startswith("int"):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if kind.startswith("float"):
            if isinstance(raw, bool) or not math.isfinite(float(raw)):
                raise ValueError
            return float(raw)
        if kind.startswith("str"):
            return str(raw)
    except (TypeError, ValueError):
        pass
    else:
        return raw
    raise ConfigError(f"option {name}={raw!r}: expected {kind.replace('|None', ' or none')}")


def config_fields() -> list[dict]:
    """[{name, section, type, default, help, min, max}] for every TrainConfig option, in declaration
    order (min and max None where unbounded); `student` is in the `train` section."""
    options = []
    for f in fields(TrainConfig):
        low, high = f.metadata["bounds"] or (None, None)
        options.append({"name": f.name, "section": f.metadata["section"], "type": str(f.type).replace(" ", ""),
                        "default": f.default, "help": f.metadata["help"], "min": low, "max": high})
    return options
