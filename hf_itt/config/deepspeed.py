"""DeepSpeed configs: the built-in ZeRO presets, loading, and validation before any model is built.

The HF Trainer fills every DeepSpeed value it owns from ``TrainingArguments`` when the value is
``"auto"`` and raises on a concrete value that disagrees, but only inside ``train()``, after the
model is built (minutes into a large run). ``resolve_deepspeed_config`` runs the same checks up
front, with one message that names both values and the fix.

The presets are defined here (so they exist when hf_itt is pip-installed) and written to the repo's
``ds_configs/*.json``; tests/test_deepspeed_config.py fails if the two drift apart. Regenerate with
``python -m hf_itt.config.deepspeed --write ds_configs``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from hf_itt.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_HINT = "pip install 'hf_itt[deepspeed]'"
_RANK_FILE = re.compile(r"zero_pp_rank_(\d+)_mp_rank_\d+_optim_states\.pt$")

# --------------------------------------------------------------------------------------------------
# Built-in presets
# --------------------------------------------------------------------------------------------------


def _common_sections() -> dict:
    """Precision and optimizer: every value the Trainer owns is "auto".

    No "scheduler" block: the Trainer then builds its own lr_scheduler_type schedule (any of them).
    DeepSpeed's WarmupDecayLR is not the same schedule: it forces at least 2 warmup steps starting
    from lr 0, so short stages and exact single-process comparisons would differ.
    """
    return {
        "bf16": {"enabled": "auto"},
        "fp16": {
            "enabled": "auto",
            "loss_scale": 0,
            "loss_scale_window": 1000,
            "initial_scale_power": 16,
            "hysteresis": 2,
            "min_loss_scale": 1,
        },
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
        },
    }


def _batch_sections() -> dict:
    return {
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
        "steps_per_print": 2000,
        "wall_clock_breakdown": False,
    }


def _zero_section(stage: int, offload: bool) -> dict:
    cpu = {"device": "cpu", "pin_memory": True}
    if stage == 2:
        zero = {
            "stage": 2,
            "allgather_partitions": True,
            "allgather_bucket_size": 200_000_000,
            "overlap_comm": True,
            "reduce_scatter": True,
            "reduce_bucket_size": "auto",
            "contiguous_gradients": True,
        }
        return {**zero, "offload_optimizer": cpu} if offload else zero
    zero = {
        "stage": 3,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
        "sub_group_size": 1_000_000_000,
        "stage3_max_live_parameters": 1_000_000_000,
        "stage3_max_reuse_distance": 1_000_000_000,
        # Without it save_model() writes empty placeholder weights on ZeRO-3.
        "stage3_gather_16bit_weights_on_model_save": True,
    }
    return {**zero, "offload_optimizer": cpu, "offload_param": cpu} if offload else zero


BUILTIN_CONFIGS = {"zero2": (2, False), "zero2_offload": (2, True), "zero3": (3, False), "zero3_offload": (3, True)}
DEFAULT_CONFIG = "zero2"


def builtin_config(name: str = DEFAULT_CONFIG) -> dict:
    """A fresh copy of a built-in preset: ``zero2`` (default), ``zero2_offload``, ``zero3``, ``zero3_offload``."""
    if name not in BUILTIN_CONFIGS:
        raise ConfigError(f"Unknown built-in DeepSpeed config {name!r}; choose one of {sorted(BUILTIN_CONFIGS)}.")
    stage, offload = BUILTIN_CONFIGS[name]
    return {**_common_sections(), "zero_optimization": _zero_section(stage, offload), **_batch_sections()}


def write_builtin_configs(out_dir: str | Path) -> list[Path]:
    """Write every preset as ``<out_dir>/<name>.json`` (how ds_configs/ is generated)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in BUILTIN_CONFIGS:
        path = out / f"{name}.json"
        path.write_text(json.dumps(builtin_config(name), indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _candidate_paths(value: str) -> list[Path]:
    path = Path(value).expanduser()
    return [path] if path.is_absolute() else [Path.cwd() / path, REPO_ROOT / path]


def load_deepspeed_config(path_or_dict: str | Path | Mapping) -> dict:
    """A config from a dict, a JSON file (relative paths: cwd, then the repo root) or a preset name.

    ``ds_configs/<preset>.json`` falls back to the built-in preset when the file is not on disk
    (hf_itt pip-installed without the repo checkout).
    """
    if isinstance(path_or_dict, Mapping):
        return copy.deepcopy(dict(path_or_dict))
    value = str(path_or_dict)
    if value in BUILTIN_CONFIGS:
        return builtin_config(value)
    for path in _candidate_paths(value):
        if path.is_file():
            return _read_json(path)
    stem = Path(value).stem
    if Path(value).parent.name == "ds_configs" and stem in BUILTIN_CONFIGS:
        return builtin_config(stem)
    looked = ", ".join(str(p) for p in _candidate_paths(value))
    raise ConfigError(
        f"DeepSpeed config file not found: {value} (looked in {looked}). Give a path to a JSON "
        f"file or a built-in preset name: {', '.join(BUILTIN_CONFIGS)}."
    )


def _read_json(path: Path) -> dict:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"DeepSpeed config {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}). Fix the file or start from ds_configs/zero2.json."
        ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"DeepSpeed config {path} must hold a JSON object, got {type(config).__name__}.")
    return config


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def require_deepspeed() -> None:
    """ConfigError with the install command when ``deepspeed`` cannot be imported."""
    try:
        import deepspeed  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"The experiment asks for a DeepSpeed config but DeepSpeed is not importable ({err}). "
            f"Install it with: {INSTALL_HINT}  (or drop the deepspeed setting)."
        ) from None


def _training_value(training_args: Any, name: str):
    """A TrainingArguments value from an object or a dict; missing dict keys take the Trainer default."""
    if training_args is not None and not isinstance(training_args, Mapping):
        return getattr(training_args, name)
    if training_args and name in training_args:
        return training_args[name]
    return _trainer_defaults()[name]


@functools.lru_cache(maxsize=1)
def _trainer_defaults() -> dict:

    from transformers import TrainingArguments

    return {f.name: f.default for f in dataclasses.fields(TrainingArguments) if f.default is not dataclasses.MISSING}


def _world_size(training_args: Any) -> int:
    if training_args is not None and not isinstance(training_args, Mapping):
        return training_args.world_size
    if training_args and "world_size" in training_args:
        return int(training_args["world_size"])
    return int(os.environ.get("WORLD_SIZE", 1))


def trainer_owned_values(training_args: Any = None) -> dict[str, tuple[str, Any]]:
    """``{ds_key: (training_args_name, value)}`` for every key the HF Trainer fills or checks.

    Mirrors ``HfTrainerDeepSpeedConfig.trainer_config_process`` in transformers/integrations/deepspeed.py.
    """
    get = lambda name: _training_value(training_args, name)  # noqa: E731
    micro, accumulation = get("per_device_train_batch_size"), get("gradient_accumulation_steps")
    values = {
        "train_micro_batch_size_per_gpu": ("per_device_train_batch_size", micro),
        "gradient_accumulation_steps": ("gradient_accumulation_steps", accumulation),
        "train_batch_size": (
            "world_size * per_device_train_batch_size * gradient_accumulation_steps",
            _world_size(training_args) * micro * accumulation,
        ),
        "gradient_clipping": ("max_grad_norm", get("max_grad_norm")),
        "optimizer.params.lr": ("learning_rate", get("learning_rate")),
        "optimizer.params.betas": ("adam_beta1, adam_beta2", [get("adam_beta1"), get("adam_beta2")]),
        "optimizer.params.eps": ("adam_epsilon", get("adam_epsilon")),
        "optimizer.params.weight_decay": ("weight_decay", get("weight_decay")),
        "scheduler.params.warmup_max_lr": ("learning_rate", get("learning_rate")),
        "fp16.enabled": ("fp16", bool(get("fp16") or get("fp16_full_eval"))),
        "bf16.enabled": ("bf16", bool(get("bf16") or get("bf16_full_eval"))),
    }
    if get("max_steps") and get("max_steps") > 0:
        values["scheduler.params.total_num_steps"] = ("max_steps", get("max_steps"))
    return values


def _lookup(config: Mapping, dotted_key: str):
    node: Any = config
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _check_zero(config: Mapping, source: str) -> None:
    zero = config.get("zero_optimization", {}) or {}
    stage = zero.get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise ConfigError(f"DeepSpeed config {source}: zero_optimization.stage must be 0, 1, 2 or 3, got {stage!r}.")
    if stage == 3 and zero.get("stage3_gather_16bit_weights_on_model_save") is not True:
        raise ConfigError(
            f'DeepSpeed config {source} uses ZeRO-3 without "stage3_gather_16bit_weights_on_model_save": true '
            "in zero_optimization: stage checkpoints would hold empty sharded placeholders instead of weights. "
            "Add that setting (ds_configs/zero3.json has it)."
        )


def _check_precision(config: Mapping, source: str) -> None:
    if _lookup(config, "fp16.enabled") is True and _lookup(config, "bf16.enabled") is True:
        raise ConfigError(
            f'DeepSpeed config {source} enables both fp16 and bf16; set both to "auto" and choose '
            "with the bf16 / fp16 training arguments."
        )


def _check_scheduler(config: Mapping, training_args: Any, source: str) -> None:
    scheduler_type = _training_value(training_args, "lr_scheduler_type")
    scheduler_type = getattr(scheduler_type, "value", scheduler_type)
    if "scheduler" in config and scheduler_type != "linear":
        raise ConfigError(
            f"DeepSpeed config {source} defines a scheduler ({config['scheduler'].get('type')}), which replaces the "
            f'Trainer\'s lr_scheduler_type={scheduler_type!r}. Remove the "scheduler" block to use '
            f"{scheduler_type!r}, or set lr_scheduler_type to 'linear'."
        )


def _check_cpu_launch(training_args: Any, source: str) -> None:
    from deepspeed.accelerator import get_accelerator

    launched = int(os.environ.get("WORLD_SIZE", 1)) > 1  # set by the launcher
    if launched and get_accelerator().device_name() == "cpu" and not _training_value(training_args, "use_cpu"):
        raise ConfigError(
            f"DeepSpeed config {source}: several ranks on a CPU-only machine need use_cpu=True in the training "
            "arguments, or the Trainer sees world size 1 (no data sharding; DeepSpeed rejects train_batch_size). "
            "Call hf_itt.config.deepspeed.prepare_deepspeed_launch() before building TrainingArguments."
        )


def _mismatches(config: Mapping, training_args: Any) -> list[str]:
    lines = []
    for ds_key, (hf_name, hf_value) in trainer_owned_values(training_args).items():
        ds_value = _lookup(config, ds_key)
        if ds_value is None or ds_value == "auto" or ds_value == hf_value:
            continue
        lines.append(f"{ds_key}={ds_value!r} vs {hf_name}={hf_value!r}")
    return lines


def validate_deepspeed_config(
    config: Mapping, training_args: Any = None, *, source: str = "<dict>", check_import: bool = True
) -> None:
    """Raise ConfigError for a config the Trainer would reject or silently misuse.

    ``training_args``: a ``TrainingArguments``, a dict of its fields (missing ones take the Trainer's
    defaults; ``world_size`` may be included) or None (all defaults).
    """
    if check_import:
        require_deepspeed()
        _check_cpu_launch(training_args, source)
    _check_zero(config, source)
    _check_precision(config, source)
    _check_scheduler(config, training_args, source)
    mismatches = _mismatches(config, training_args)
    if mismatches:
        raise ConfigError(
            f"DeepSpeed config {source} contradicts the training arguments: "
            + "; ".join(mismatches)
            + '. Set these DeepSpeed values to "auto" so the Trainer fills them in.'
        )


def resolve_deepspeed_config(
    path_or_dict: str | Path | Mapping, training_args: Any = None, *, check_import: bool = True
) -> dict:
    """Load (see ``load_deepspeed_config``) and validate a config; return it with "auto" values kept.

    Pass the result to ``TrainingArguments(deepspeed=...)``; the Trainer fills the "auto" values.
    """
    config = load_deepspeed_config(path_or_dict)
    source = "<dict>" if isinstance(path_or_dict, Mapping) else str(path_or_dict)
    validate_deepspeed_config(config, training_args, source=source, check_import=check_import)
    return config


def fill_auto_values(
    config: Mapping, training_args: Any, *, num_training_steps: int, hidden_size: int, warmup_steps: int = 0
) -> dict:
    """Replace every "auto" the way the Trainer does; for running ``deepspeed.initialize`` without a Trainer."""
    filled = copy.deepcopy(dict(config))
    values = {key: value for key, (_, value) in trainer_owned_values(training_args).items()}
    values.update(
        {
            "scheduler.params.warmup_min_lr": 0,
            "scheduler.params.total_num_steps": num_training_steps,
            "scheduler.params.warmup_num_steps": max(1, warmup_steps),
            "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
            "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
            "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
        }
    )
    for dotted_key, value in values.items():
        *parents, leaf = dotted_key.split(".")
        node = _lookup(filled, ".".join(parents)) if parents else filled
        if isinstance(node, dict) and node.get(leaf) == "auto":
            node[leaf] = value
    return filled


def prepare_deepspeed_launch() -> dict:
    """Call before building ``TrainingArguments`` in a process started by the deepspeed launcher.

    Returns the ``TrainingArguments`` overrides this machine needs. On a CPU-only machine
    (``DS_ACCELERATOR=cpu``) accelerate reports world size 1 unless ``use_cpu=True`` (so no data
    sharding, and DeepSpeed rejects the "auto" train_batch_size); with ``use_cpu=True`` it skips
    DeepSpeed's communication setup, which ZeRO-3's partitioned ``from_pretrained`` needs, so it is
    started here. On GPUs this returns ``{}`` and does nothing.
    """
    require_deepspeed()
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != "cpu":
        return {}
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        deepspeed.init_distributed()
        release_shm_allreduce_buffer()
    return {"use_cpu": True}


SHM_DIR = Path("/dev/shm")
SHM_BUFFER_PREFIX = "deepspeed_allreduce_buffer"  # SHM_BUFFER_NAME in deepspeed/ops/csrc/cpu/comm/shm.cpp


def shm_allreduce_buffer_name(rank: int) -> str:
    """The name DeepSpeed's CPU communication op gives rank ``rank``'s shared all-reduce buffer
    (``deepspeed/ops/csrc/cpu/comm/shm.cpp``: ``<prefix>_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<rank>``)."""
    address, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    return f"{SHM_BUFFER_PREFIX}_{os.getuid()}_{address}_{port}_{rank}"


def release_shm_allreduce_buffer() -> None:
    """Unlink this rank's DeepSpeed shared-memory all-reduce buffer once every rank has mapped it.

    On the CPU accelerator each rank creates a 66 MB ``/dev/shm`` buffer and DeepSpeed never unlinks
    it (``shared_close`` is never called), so every launch kept 66 MB per rank of RAM until reboot:
    a test suite or a grid of CPU runs filled /dev/shm and ended OOM-killed. Every rank maps every
    buffer before ``init_distributed`` returns; after the barrier no rank opens a name again, so
    unlinking now keeps the mappings and lets the kernel free the memory when the ranks exit, even
    when they are killed.
    """
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    dist.barrier()
    (SHM_DIR / shm_allreduce_buffer_name(dist.get_rank())).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------------


def _tag_dir(checkpoint_dir: Path) -> Path:
    """The folder with the per-rank files: ``<ckpt>/<tag named by 'latest'>`` or ``<ckpt>`` itself."""
    latest = checkpoint_dir / "latest"
    if latest.is_file():
        return checkpoint_dir / latest.read_text(encoding="utf-8").strip()
    tags = sorted(checkpoint_dir.glob("global_step*"))
    return tags[-1] if tags else checkpoint_dir


def saved_world_size(checkpoint_dir: str | Path) -> int | None:
    """The number of data-parallel ranks that wrote a ZeRO checkpoint; None if it has no per-rank shards
    (not a DeepSpeed checkpoint, or a universal checkpoint, which loads at any world size)."""
    tag_dir = _tag_dir(Path(checkpoint_dir))
    if (tag_dir / "zero").is_dir():
        return None
    ranks = {int(m.group(1)) for p in tag_dir.glob("*optim_states.pt") if (m := _RANK_FILE.search(p.name))}
    return len(ranks) or None


def check_world_size_on_resume(checkpoint_dir: str | Path, world_size: int) -> int | None:
    """Raise ConfigError if a ZeRO checkpoint was written by a different number of ranks.

    ZeRO keeps one optimizer-state shard per rank and DeepSpeed refuses to load it at another world
    size (ZeRORuntimeException, raised only once the model is built). Returns the saved world size.
    """
    saved = saved_world_size(checkpoint_dir)
    if saved is None or saved == world_size:
        return saved
    tag_dir = _tag_dir(Path(checkpoint_dir))
    raise ConfigError(
        f"Cannot resume from {checkpoint_dir}: its DeepSpeed ZeRO optimizer state was saved by {saved} ranks but this "
        f"run has {world_size}. Fix one of: relaunch with {saved} processes; or convert it to DeepSpeed's universal "
        f"checkpoint (python -m deepspeed.checkpoint.ds_to_universal --inject_missing_state --input_folder {tag_dir} "
        f"--output_folder {tag_dir}_universal, write '{tag_dir.name}_universal' into {Path(checkpoint_dir) / 'latest'}, "
        f'and add "checkpoint": {{"load_universal": true}} to the DeepSpeed config); or restart the stage '
        f"from scratch with --force."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="DIR", help="write the built-in presets as DIR/<name>.json")
    parser.add_argument("--check", metavar="CONFIG", help="load and validate a config against default arguments")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_builtin_configs(args.write):
            print(f"wrote {path}")
    if args.check:
        resolve_deepspeed_config(args.check)
        print(f"{args.check}: OK")


if __name__ == "__main__":
    main()
