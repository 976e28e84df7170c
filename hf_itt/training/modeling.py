"""MultiTaskModel: one shared encoder (any ``AutoModel``, XLM-R by default) and one head per task.

A batch holds one task (``task_ids`` [B], all equal; indexes ``config.tasks`` in order). The whole
model round-trips through ``save_pretrained``/``from_pretrained`` (MLM decoders stay tied to the
input embeddings); ``export_encoder`` writes the bare encoder as a plain ``AutoModel`` checkpoint,
which is what the next stage starts from. Importing this module registers the config and model with
``AutoConfig``/``AutoModel``, so ``AutoModel.from_pretrained(stage_dir)`` loads a multi-task checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

from hf_itt.errors import CheckpointError, ConfigError, TaskError
from hf_itt.task_types import get_type, trainable_type_names

TASK_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _field(spec: Any, *keys: str):
    for key in keys:
        value = spec.get(key) if isinstance(spec, Mapping) else getattr(spec, key, None)
        if value is not None:
            return value
    return None


def head_spec(name: str, spec: Any) -> dict:
    """Normalise a task description (mapping or TaskSpec-like object) to ``{type, num_labels, labels}``."""
    if not isinstance(name, str) or not TASK_NAME.match(name):
        raise ConfigError(f"task name {name!r} is invalid: use letters, digits, '_' or '-' only")
    task_type = _field(spec, "type", "task_type")
    if task_type not in trainable_type_names():
        raise ConfigError(
            f"task {name!r}: type {task_type!r} has no head; use one of {', '.join(trainable_type_names())}"
        )
    labels = _field(spec, "labels")
    labels = [str(label) for label in labels] if labels else None
    num_labels, labels = get_type(task_type).normalize_head(name, labels, _field(spec, "num_labels", "num_choices"))
    return {"type": task_type, "num_labels": num_labels, "labels": labels}


def normalize_tasks(tasks: Mapping[str, Any] | None) -> dict[str, dict]:
    return {name: head_spec(name, spec) for name, spec in (tasks or {}).items()}


def check_tasks_match(checkpoint_tasks: Mapping[str, dict], wanted: Mapping[str, dict], where: str) -> None:
    """Raise CheckpointError when a task present on both sides has a different type or label set."""
    for name, spec in wanted.items():
        saved = checkpoint_tasks.get(name)
        if saved is None:
            continue
        if saved["type"] != spec["type"]:
            raise CheckpointError(
                f"{where}: head {name!r} is {saved['type']} in the checkpoint but the spec says "
                f"{spec['type']}; rename the task or start from the exported encoder"
            )
        if not get_type(spec["type"]).labelled:
            continue
        if saved["num_labels"] != spec["num_labels"] or (
            saved["labels"] and spec["labels"] and saved["labels"] != spec["labels"]
        ):
            raise CheckpointError(
                f"{where}: head {name!r} has {saved['num_labels']} labels {saved['labels'] or ''} in the checkpoint "
                f"but the spec has {spec['num_labels']} {spec['labels'] or ''}; fix the task's labels or start a "
                f"fresh head from the exported encoder (MultiTaskModel.from_encoder(<stage>/encoder, tasks))"
            )


class MultiTaskConfig(PreTrainedConfig):
    """The encoder's config (any ``AutoConfig``) plus ``tasks``: name -> {type, num_labels, labels}."""

    model_type = "hf_itt_multitask"
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="xlm-roberta")}

    encoder: PreTrainedConfig | dict | None = None
    tasks: dict | None = None
    # config.json sorts keys, so the order that task ids index is saved on its own.
    task_order: list | None = None
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        tasks = normalize_tasks(self.tasks)
        order = list(self.task_order) if self.task_order is not None else list(tasks)
        if sorted(order) != sorted(tasks):
            raise CheckpointError(f"config task_order {order} does not match its tasks {sorted(tasks)}")
        self.tasks, self.task_order = {name: tasks[name] for name in order}, order
        super().__post_init__(**kwargs)

    @property
    def task_names(self) -> list[str]:
        return list(self.task_order)

    @property
    def hidden_size(self) -> int:
        """The encoder's: DeepSpeed's "auto" bucket sizes are read from ``model.config.hidden_size``."""
        return self.encoder.hidden_size

    def get_text_config(self, decoder=None, encoder=None) -> PreTrainedConfig:
        return self.encoder


@dataclass
class MultiTaskOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    start_logits: torch.FloatTensor | None = None
    end_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def build_encoder(encoder_config) -> PreTrainedModel:
    try:  # BERT-style encoders carry a pooler the heads do not use
        return AutoModel.from_config(encoder_config, add_pooling_layer=False)
    except TypeError:
        return AutoModel.from_config(encoder_config)


class MultiTaskModel(PreTrainedModel):
    config_class = MultiTaskConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # The heads compute per-batch means and ignore num_items_in_batch: let the Trainer scale for accumulation.
    accepts_loss_kwargs = False

    def __init__(self, config: MultiTaskConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else build_encoder(config.encoder)
        self.heads = nn.ModuleDict({name: build_head(spec, config.encoder) for name, spec in config.tasks.items()})
        self._tied_weights_keys = self._mlm_tied_keys()
        self.post_init()
        self._ignore_tied_keys_on_save()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_encoder(
        cls, name_or_path: str | Path, tasks: Mapping[str, Any], revision: str | None = None, **kwargs
    ) -> "MultiTaskModel":
        """Pretrained encoder weights (Hub id or folder) + freshly initialised heads for ``tasks``."""
        try:
            encoder = AutoModel.from_pretrained(str(name_or_path), revision=revision, add_pooling_layer=False, **kwargs)
        except TypeError:
            encoder = AutoModel.from_pretrained(str(name_or_path), revision=revision, **kwargs)
        if isinstance(encoder, MultiTaskModel):
            raise CheckpointError(
                f"{name_or_path} is a multi-task checkpoint; start from its exported encoder "
                f"(<stage dir>/checkpoint) or load it with MultiTaskModel.from_pretrained"
            )
        attn_implementation = encoder.config._attn_implementation
        config = MultiTaskConfig(encoder=encoder.config, tasks=tasks)
        # Building the composite config resets the (shared) encoder config's attention choice: restore it.
        encoder.config._attn_implementation_internal = attn_implementation
        config.encoder.name_or_path = str(name_or_path)
        model = cls(config, encoder=encoder)
        return model.to(encoder.dtype)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, tasks: Mapping[str, Any] | None = None, **kwargs):
        """Load a saved multi-task model; with ``tasks``, check the saved heads fit them and add missing ones."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if tasks is not None:
            wanted = normalize_tasks(tasks)
            check_tasks_match(model.config.tasks, wanted, str(pretrained_model_name_or_path))
            for name, spec in wanted.items():
                if name not in model.config.tasks:
                    model.add_task(name, **spec)
        return model

    def add_task(
        self,
        name: str,
        type: str,
        num_labels: int | None = None,
        labels: list[str] | None = None,
        num_choices: int | None = None,
    ) -> nn.Module:
        """Add a freshly initialised head (e.g. a target task on top of an intermediate checkpoint)."""
        if name in self.config.tasks:
            raise ConfigError(f"task {name!r} already has a head; pick another name")
        spec = head_spec(name, {"type": type, "num_labels": num_labels or num_choices, "labels": labels})
        head = build_head(spec, self.config.encoder)
        head.to(device=self.device, dtype=self.dtype)
        head.apply(self._init_weights)
        self.config.tasks = {**self.config.tasks, name: spec}
        self.config.task_order = [*self.config.task_order, name]
        self.heads[name] = head
        self._tied_weights_keys = self._mlm_tied_keys()
        self.all_tied_weights_keys = self.get_expanded_tied_weights_keys()
        self.tie_weights(recompute_mapping=False)
        self._ignore_tied_keys_on_save()
        return head

    def export_encoder(self, out_dir: str | Path, tokenizer=None, **save_kwargs) -> Path:
        """Write the bare encoder (+ tokenizer) so ``AutoModel.from_pretrained(out_dir)`` loads it."""
        out = Path(out_dir)
        self.encoder.save_pretrained(out, **save_kwargs)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
        return out

    # ---- weights ------------------------------------------------------------------------------
    def _mlm_tied_keys(self) -> dict[str, str]:
        embeddings = self.encoder.get_input_embeddings().weight
        source = next(name for name, param in self.encoder.named_parameters() if param is embeddings)
        return {
            f"heads.{name}.{head.tied_weight}": f"encoder.{source}"
            for name, head in self.heads.items()
            if getattr(head, "tied_weight", None)
        }

    def _ignore_tied_keys_on_save(self) -> None:
        # Tied decoders are not saved; listing them lets Trainer's resume re-tie instead of warning.
        self._keys_to_ignore_on_save = set(self._keys_to_ignore_on_save or ()) | set(self._tied_weights_keys)

    def _init_weights(self, module):
        std = getattr(self.config.encoder, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    @property
    def task_names(self) -> list[str]:
        return self.config.task_names

    def task_id(self, name: str) -> int:
        if name not in self.config.tasks:
            raise ConfigError(f"task {name!r} has no head in this model (heads: {', '.join(self.task_names)})")
        return self.task_names.index(name)

    # ---- forward ------------------------------------------------------------------------------
    def _task_of(self, task_ids: torch.Tensor | None) -> str:
        if task_ids is None:
            if len(self.task_names) == 1:
                return self.task_names[0]
            raise ValueError(f"task_ids is required: this model has {len(self.task_names)} heads")
        first = int(task_ids.reshape(-1)[0])
        if task_ids.numel() > 1 and not bool((task_ids == first).all()):
            raise ValueError("a batch must hold a single task: task_ids differ within the batch")
        if not 0 <= first < len(self.task_names):
            raise ValueError(f"task id {first} out of range for heads {self.task_names}")
        return self.task_names[first]

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        task_ids=None,
        labels=None,
        start_positions=None,
        end_positions=None,
        output_hidden_states=None,
        output_attentions=None,
        return_dict=None,
        **kwargs,
    ) -> MultiTaskOutput:
        task = self._task_of(task_ids)
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "position_ids": position_ids,
            "inputs_embeds": inputs_embeds,
        }
        targets = {"labels": labels, "start_positions": start_positions, "end_positions": end_positions, **kwargs}
        encoded = {}

        def encode(**encoder_inputs):  # the type decides how the batch meets the encoder (MC flattens it)
            result = self.encoder(
                **{k: v for k, v in encoder_inputs.items() if v is not None},
                return_dict=True,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
            )
            encoded.setdefault("first", result)
            return result.last_hidden_state

        task_type = get_type(self.config.tasks[task]["type"])
        out = task_type.forward(
            encode,
            self.heads[task],
            {k: v for k, v in inputs.items() if v is not None},
            {k: v for k, v in targets.items() if v is not None},
        )
        first = encoded.get("first")
        return MultiTaskOutput(
            **out, hidden_states=getattr(first, "hidden_states", None), attentions=getattr(first, "attentions", None)
        )


def build_head(spec: dict, encoder_config) -> nn.Module:
    """A freshly built head for a normalised task spec ({type, num_labels, labels})."""
    try:
        return get_type(spec["type"]).build_head(spec["num_labels"], encoder_config)
    except TaskError as err:
        raise ConfigError(str(err)) from None


AutoConfig.register(MultiTaskConfig.model_type, MultiTaskConfig, exist_ok=True)
AutoModel.register(MultiTaskConfig, MultiTaskModel, exist_ok=True)
