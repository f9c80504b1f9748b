"""Training configuration: typed dataclasses, presets, TOML files and flag overrides.

The resolved config (preset <- TOML file <- flags) is saved in the run directory as
`config.toml` and in the store's runs table, so a run can always be reproduced.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from labelaudit.data.formats import KINDS as DATASET_KINDS


@dataclass
class ModelConfig:
    """Network size (docs/design.md §2). depth 101 / width 1.0 / conva 3 is the released network."""

    depth: int = 101
    width: float = 1.0
    conva_kernel: int = 3
    abn: str = "auto"  # auto | torch | inplace
    pretrained: str | None = None  # local deep-stem ImageNet checkpoint


@dataclass
class DataConfig:
    """Where the images come from and how they are augmented."""

    dataset: str = "synthetic"  # lapa | celebamask | helen | folder | synthetic
    root: str = ""
    labels: str | None = None  # corrected label tree from `labelaudit export`
    size: int = 473
    scale_min: float = 0.75
    scale_max: float = 1.25
    rotation: float = 30.0
    flip: bool = True
    channel_order: str = "rgb"  # rgb | bgr (the reference's quirk, to reuse its weights)
    merge_order: str = "official"  # CelebAMask-HQ part merge order
    workers: int = 0
    on_bad: str = "raise"
    # Known errors planted in copies of this share of the training labels (at most plant_max
    # images; 0 = none), for the calibrated scorer to learn how the teacher treats an error it
    # trained on (data.planted). Folds never plant: their teachers score images they never saw.
    # Off by default until measured on held-out noise (docs/experiments.md, stop 22).
    plant: float = 0.0
    plant_max: int = 500

    def open_source(self, on_bad: str | None = None):
        """The dataset these settings describe (merge order only where the layout has parts)."""
        from labelaudit.data import detect_layout, open_source

        options: dict[str, Any] = {"on_bad": on_bad or self.on_bad}
        kind = self.dataset
        if kind == "celebamask" or (kind == "synthetic" and detect_layout(self.root) == "celebamask"):
            options["merge_order"] = self.merge_order
        return open_source(kind, self.root, **options)


TEACHER_AVERAGES = ("cycle_end", "epochs")
CSR_LOSSES = ("add", "replace")  # model.losses.COMPOSITIONS, kept here so config needs no torch


@dataclass
class ScheduleConfig:
    """Epochs, SGD and the CSR cycles (poly decay, then K cosine cycles of N epochs)."""

    epochs: int = 200
    batch_size: int = 28
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    csr_start: int = 150  # first epoch of the CSR phase
    cycles: int = 5  # K; 0: no CSR phase (a plain training; csr_start is set to epochs)
    cycle_epochs: int = 10  # N
    cycle_lr_max: float = 5e-4
    cycle_lr_min: float = 1e-5
    edge_width: int = 1
    bn_batches: int | None = None  # batches for BN re-estimation of the teacher (None = all)
    # The released code folds the model at the end of the DML phase into the teacher as its first
    # snapshot, so every CSR cycle distils (paper preset); off (the paper's text, eq. 6): the
    # teacher averages cycle-end snapshots only and the first cycle trains without one.
    seed_teacher: bool = False
    # Eq. 6: "cycle_end" folds one snapshot per cycle end into the teacher (the released code);
    # "epochs" is eq. 6 as the paper writes it: the mean of the cycle's N per-epoch instances is
    # folded in, M <- k/(k+1) M + 1/((k+1) N) sum_n M_n.
    teacher_average: str = "cycle_end"
    # CSR loss: "add" puts the distillation KL on top of the hard-label losses; "replace" (the
    # released code) puts the soft target in the hard target's place (model.losses).
    csr_loss: str = "add"
    # False: parsing CE + Lovasz only (the edge and edge-attention terms weigh 0): with cycles = 0,
    # the "plain network" a user would train instead of DML-CSR (benchmarks/bench_teachers.py).
    edge_loss: bool = True
    # Keep this many students at evenly spaced epochs in snapshots/ (0 = off; the last one is
    # the final student): the scan's "snapshots" teacher averages their probabilities
    # (early-learning: networks fit clean labels before they memorise noisy ones).
    snapshots: int = 8


@dataclass
class TrainConfig:
    """Everything one `labelaudit train` run needs."""

    preset: str = "paper"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    folds: int = 0
    amp: bool = True  # bf16 autocast + channels_last when CUDA is present
    eval_test: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _preset_paper() -> TrainConfig:
    return TrainConfig(preset="paper", schedule=ScheduleConfig(seed_teacher=True, teacher_average="epochs"))


def _preset_cpu() -> TrainConfig:
    return TrainConfig(
        preset="cpu",
        model=ModelConfig(depth=18, width=0.5, conva_kernel=3, abn="torch"),
        data=DataConfig(size=192, rotation=20.0),  # 128 before stop 31 (benchmarks/size128.toml)
        schedule=ScheduleConfig(
            epochs=40, batch_size=16, lr=1e-2, csr_start=28, cycles=3, cycle_epochs=4,
            cycle_lr_max=5e-3, cycle_lr_min=1e-4, edge_width=1,
        ),
        amp=False,
    )


def _preset_cpu_tiny() -> TrainConfig:
    return TrainConfig(
        preset="cpu-tiny",
        model=ModelConfig(depth=18, width=0.25, conva_kernel=3, abn="torch"),
        data=DataConfig(size=64, rotation=15.0),
        schedule=ScheduleConfig(
            epochs=4, batch_size=8, lr=1e-2, csr_start=2, cycles=2, cycle_epochs=1,
            cycle_lr_max=5e-3, cycle_lr_min=1e-4, edge_width=1, bn_batches=4,
        ),
        amp=False,
    )


def _preset_demo() -> TrainConfig:
    """`labelaudit demo`: two trainings in the demo's 10-minute budget on 2 CPU cores."""
    return TrainConfig(
        preset="demo",
        model=ModelConfig(depth=18, width=0.25, conva_kernel=3, abn="torch"),
        data=DataConfig(size=96, rotation=20.0),
        schedule=ScheduleConfig(
            epochs=30, batch_size=8, lr=2e-2, csr_start=18, cycles=2, cycle_epochs=6,
            cycle_lr_max=5e-3, cycle_lr_min=1e-4, edge_width=1, bn_batches=8,
        ),
        amp=False,
    )


PRESETS = {"paper": _preset_paper, "cpu": _preset_cpu, "demo": _preset_demo,
           "cpu-tiny": _preset_cpu_tiny}


def preset(name: str) -> TrainConfig:
    """A fresh copy of a named preset."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def rescale_epochs(cfg: TrainConfig, epochs: int) -> None:
    """Set the total epochs, moving the CSR start and cycle length proportionally.

    A short run keeps the phase structure (DML, then at least one CSR cycle) so that its
    checkpoint still ends with a teacher.
    """
    s = cfg.schedule
    if s.cycles == 0:
        s.epochs = s.csr_start = epochs
        return
    if epochs < 2:
        raise ValueError("--epochs must be at least 2 (one DML epoch and one CSR cycle)")
    csr_span = s.cycles * s.cycle_epochs
    ratio = epochs / s.epochs
    cycle_epochs = max(1, round(s.cycle_epochs * ratio))
    cycles = s.cycles
    while cycles > 1 and cycles * cycle_epochs > epochs - 1:
        cycles -= 1
    csr_span = cycles * cycle_epochs
    s.epochs = epochs
    s.cycles = cycles
    s.cycle_epochs = cycle_epochs
    s.csr_start = epochs - csr_span


def _merge(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"{where}: unknown setting {key!r} (known: {', '.join(names)})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{where}: [{key}] must be a table")
            _merge(current, value, f"{where}.{key}")
        else:
            setattr(obj, key, _typed(value, str(names[key].type), f"{where}: {key}"))


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,),
                                       "str": (str,)}


def _typed(value: Any, annotation: str, where: str) -> Any:
    """`value` checked against a field's annotation ("int", "float | None", ...); ints are
    accepted for floats (and become floats), nothing else is converted (`"no"` is no bool)."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return None
    for k in kinds:
        allowed = _TYPES.get(k)
        if allowed is None:
            return value  # a type this check does not know: taken as given
        if isinstance(value, allowed) and not (isinstance(value, bool) and k != "bool"):
            return float(value) if k == "float" else value
    raise ValueError(f"{where} = {value!r}: expected {annotation.replace('|', 'or')}")


def load_config(preset_name: str = "paper", toml_path: str | Path | None = None,
                overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Resolve preset <- TOML file <- overrides ({"schedule.epochs": 3, ...}).

    `schedule.epochs` given as an override rescales the CSR schedule (rescale_epochs).
    """
    cfg = preset(preset_name)
    if toml_path is not None:
        path = Path(toml_path)
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"{path}: cannot read config: {e}") from e
        data.pop("preset", None)
        _merge(cfg, data, str(path))
    epochs = None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        if dotted == "schedule.epochs":
            epochs = int(value)
            continue
        *parents, leaf = dotted.split(".")
        target: Any = cfg
        for p in parents:
            target = getattr(target, p)
        _merge(target, {leaf: value}, "flag")
    if epochs is not None and epochs != cfg.schedule.epochs:
        rescale_epochs(cfg, epochs)
    if cfg.schedule.cycles == 0:
        cfg.schedule.csr_start = cfg.schedule.epochs  # no CSR phase: the whole run is DML
    validate(cfg)
    return cfg


_POSITIVE = {"model": ("width",), "data": ("size", "scale_min", "scale_max"),
             "schedule": ("epochs", "batch_size", "lr", "cycle_epochs", "cycle_lr_max",
                          "edge_width")}
_NON_NEGATIVE = {"data": ("rotation", "workers"),
                 "schedule": ("momentum", "weight_decay", "poly_power", "cycle_lr_min", "cycles",
                              "snapshots")}
_CHOICES = {"model": {"abn": ("auto", "torch", "inplace"), "conva_kernel": (1, 3)},
            "data": {"channel_order": ("rgb", "bgr"), "on_bad": ("raise", "skip"),
                     "dataset": DATASET_KINDS}}


def _check_ranges(cfg: TrainConfig) -> None:
    for part, names in _POSITIVE.items():
        for n in names:
            if getattr(getattr(cfg, part), n) <= 0:
                raise ValueError(f"{part}.{n}={getattr(getattr(cfg, part), n)}: must be > 0")
    for part, names in _NON_NEGATIVE.items():
        for n in names:
            if getattr(getattr(cfg, part), n) < 0:
                raise ValueError(f"{part}.{n}={getattr(getattr(cfg, part), n)}: must be >= 0")
    for part, table in _CHOICES.items():
        for n, allowed in table.items():
            v = getattr(getattr(cfg, part), n)
            if v not in allowed:
                raise ValueError(f"{part}.{n}={v!r}: choose one of {', '.join(map(str, allowed))}")
    d = cfg.data
    if d.scale_max < d.scale_min:
        raise ValueError(f"data.scale_max={d.scale_max} is below data.scale_min={d.scale_min}")
    if d.size < 32:
        raise ValueError(f"data.size={d.size}: at least 32 px (the network's stride is 8)")
    if cfg.schedule.bn_batches is not None and cfg.schedule.bn_batches < 1:
        raise ValueError(f"schedule.bn_batches={cfg.schedule.bn_batches}: at least 1, or unset")


def validate(cfg: TrainConfig) -> None:
    """Reject settings that cannot work, with the setting's name in the message."""
    _check_ranges(cfg)
    s = cfg.schedule
    if not 0 <= s.csr_start < s.epochs and not (s.cycles == 0 and s.csr_start == s.epochs):
        raise ValueError(f"schedule.csr_start={s.csr_start} must lie in [0, epochs={s.epochs})")
    if s.csr_start + s.cycles * s.cycle_epochs > s.epochs:
        raise ValueError(
            f"schedule: csr_start {s.csr_start} + cycles {s.cycles} x cycle_epochs "
            f"{s.cycle_epochs} exceeds epochs {s.epochs}"
        )
    if cfg.model.depth not in (18, 34, 50, 101):
        raise ValueError(f"model.depth={cfg.model.depth}: choose 18, 34, 50 or 101")
    if s.teacher_average not in TEACHER_AVERAGES:
        raise ValueError(f"schedule.teacher_average={s.teacher_average!r}: choose {' or '.join(TEACHER_AVERAGES)}")
    if s.csr_loss not in CSR_LOSSES:
        raise ValueError(f"schedule.csr_loss={s.csr_loss!r}: choose {' or '.join(CSR_LOSSES)}")
    if cfg.folds == 1 or cfg.folds < 0:
        raise ValueError("folds must be 0 (off) or at least 2")


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig from its to_dict() form (e.g. a checkpoint's copy)."""
    cfg = TrainConfig()
    _merge(cfg, data, "config")
    return cfg


def to_toml(cfg: TrainConfig) -> str:
    import tomli_w

    def drop_none(d: dict[str, Any]) -> dict[str, Any]:
        return {k: drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return tomli_w.dumps(drop_none(cfg.to_dict()))
