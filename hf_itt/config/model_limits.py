"""max_length against the model's position embeddings, read from its config.json (never its weights).

A max_length above the positions the encoder has does not fail when the stage starts: it crashes
with an index error in the middle of training, the first time a long enough row is sampled. The
check reads config.json of the base model (a local folder, or the Hugging Face cache for a Hub id;
online, config.json alone is downloaded) and of every local `from:` checkpoint. When the config
cannot be read offline the check is skipped with a note, not failed: the run itself may still work.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from hf_itt.errors import ConfigError
from hf_itt.tasks.registry import get_task

logger = logging.getLogger(__name__)

# RoBERTa-style encoders number positions from padding_idx + 1: XLM-R's 514 embeddings hold 512 tokens.
OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm")


def usable_positions(model_config: dict) -> int | None:
    """How many tokens one sequence may hold, or None when the config does not say."""
    positions = model_config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool):
        return None
    if model_config.get("model_type") in OFFSET_POSITION_MODELS:
        pad = model_config.get("pad_token_id")
        return positions - ((pad if isinstance(pad, int) else 1) + 1)
    return positions


def read_model_config(name_or_path: str, revision: str | None) -> tuple[dict | None, str]:
    """``(config dict, "")`` or ``(None, why it could not be read)``."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        return _read_json(folder / "config.json")
    path, why = _cached_hub_config(name_or_path, revision)
    if path is None:
        return None, f"config.json of {name_or_path!r} {why}"
    return _read_json(Path(path))


def _read_json(path: Path) -> tuple[dict | None, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return None, f"{path} cannot be read ({err})"
    return (data, "") if isinstance(data, dict) else (None, f"{path} does not hold a JSON object")


def _cached_hub_config(repo_id: str, revision: str | None) -> tuple[str | None, str]:
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - an id the cache cannot parse: the loader reports it later
        return None, "is not a valid Hub id or folder"
    if isinstance(cached, str):
        return cached, ""
    if constants.is_offline_mode():
        return None, "is not in the Hugging Face cache and HF_HUB_OFFLINE=1 is set"
    try:
        return hf_hub_download(repo_id, "config.json", revision=revision), ""
    except Exception as err:  # noqa: BLE001 - no network, no such repo: the model loader says which, later
        return None, f"could not be downloaded ({type(err).__name__})"


class PositionLimit:
    """The usable positions of the model a stage trains (None: unknown, checks skipped)."""

    def __init__(self, name: str, revision: str | None):
        self.name = name
        model_config, why = read_model_config(name, revision)
        self.positions = usable_positions(model_config) if model_config else None
        self.raw = model_config.get("max_position_embeddings") if model_config else None
        if model_config is None:
            logger.warning("max_length not checked against the position embeddings of %s: %s", name, why)

    def check(self, length: int | None, where: str, fix: str) -> None:
        if self.positions is None or length is None or length <= self.positions:
            return
        raise ConfigError(
            f"{where}: max_length {length} exceeds the {self.positions} tokens the model {self.name} "
            f"can hold (max_position_embeddings {self.raw} in its config.json); {fix}"
        )


def check_max_lengths(config) -> None:
    """Every stage task's and target's max_length (set on the stage, the task or targets.max_length, else
    the task's own) fits the model."""

    limit = PositionLimit(config.model.name_or_path, config.model.revision)
    for index, stage in enumerate(config.stages):
        where = f"stages[{index}] ({stage.name})"
        if stage.from_:
            folder = config.resolve_path(stage.from_)
            limit = PositionLimit(folder, None) if Path(folder).is_dir() else _Unknown()
            continue
        for task in stage.tasks:
            length = task.max_length or stage.max_length
            limit.check(
                length or get_task(task.name).max_length,
                f"{where}, task {task.name}" + ("" if length else " (its default)"),
                f"set max_length: {limit.positions} or less on the stage or the task",
            )
    for name in config.targets.tasks:
        spec, length = get_task(name), config.targets.max_length.get(name)
        if not spec.task_type.trainable:  # scored straight from the encoder
            limit.check(
                config.evaluation.retrieval_max_length,
                f"targets {name} (evaluation.retrieval_max_length)",
                f"set evaluation.retrieval_max_length: {limit.positions} or less",
            )
        else:
            limit.check(
                length or spec.max_length,
                f"targets {name}" + ("" if length else " (its default)"),
                f"set targets.max_length.{name}: {limit.positions} or less",
            )


class _Unknown(PositionLimit):
    """A `from:` checkpoint on the Hub: its config is read when it is downloaded, not at load."""

    def __init__(self):
        self.name, self.positions, self.raw = "", None, None
