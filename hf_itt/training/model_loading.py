"""Loading a base model, stage checkpoint or tokenizer with errors that name the problem and the fix.

``transformers`` reports a torn weights file as a bare ``SafetensorError``, an unknown architecture as
a ``ValueError`` and a missing Hub model as an ``OSError`` about connecting; a long run should fail
before its first step with the file, the field or the command that fixes it instead.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from hf_itt.errors import CheckpointError, HfIttError, HubError


@contextmanager
def loading_errors(name_or_path: str | Path, what: str = "model"):
    """Turn the exceptions of ``from_pretrained(name_or_path)`` into CheckpointError / HubError."""
    name = str(name_or_path)
    try:
        yield
    except HfIttError:
        raise
    except Exception as err:  # noqa: BLE001 -- re-raised as is unless recognised below
        translated = _translate(name, what, err)
        if translated is None:
            raise
        raise translated from err


def _translate(name: str, what: str, err: Exception) -> HfIttError | None:
    local = Path(name).is_dir()
    if type(err).__name__ == "SafetensorError":
        return CheckpointError(
            f"{what} {name}: model.safetensors cannot be read ({err}); the file is truncated or "
            "corrupt (an interrupted download, copy or save): copy or download it again"
        )
    if isinstance(err, ValueError) and "does not recognize this architecture" in str(err):
        return CheckpointError(
            f"{what} {name}: config.json has model_type {_model_type(name)!r}, which this "
            "transformers does not know; fix config.json or upgrade transformers"
        )
    if isinstance(err, OSError) and not local:
        return _hub_error(name, what, err)
    return None


def _model_type(folder: str) -> str | None:
    try:
        return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None


def _hub_error(name: str, what: str, err: OSError) -> HubError:
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return HubError(
            f"{what} {name!r} is not a local folder and not in the Hugging Face cache, and "
            f"HF_HUB_OFFLINE=1 is set: download it once online (`hf download {name}`), unset "
            "HF_HUB_OFFLINE, or give the path of a local folder"
        )
    return HubError(
        f"{what} {name!r} is not a local folder and could not be loaded from the Hub ({err}); check "
        f"the repo id and the network, or download it once (`hf download {name}`)"
    )


def check_vocabulary(tokenizer, model, tokenizer_source: str, model_source: str) -> None:
    """A tokenizer larger than the embedding matrix crashes mid-training on the first rare token."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise CheckpointError(
            f"the tokenizer from {tokenizer_source} has {len(tokenizer)} tokens but the model {model_source} "
            f"embeds only {rows}: it belongs to another model. Use the model's own tokenizer (remove "
            "model.tokenizer, or point model.tokenizer at the tokenizer it was trained with)"
        )


__all__ = ["loading_errors", "check_vocabulary"]
