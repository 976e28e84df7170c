"""Memory planner: which DeepSpeed config fits an encoder + heads on a given GPU, computed offline.

    python -m hf_itt.memory --model xlm-roberta-large --gpus 8 --nodes 1 --batch 4 --seq-len 256 --bf16
    python -m hf_itt.memory --model bert-base-multilingual-cased     (BERT, XLM-R and DeBERTa shapes)

Activations are fp32 unless ``--bf16`` (bf16 or fp16 training: 2 bytes); the model states follow
DeepSpeed's estimators, which assume mixed precision either way. Model states (weights, gradients, Adam moments) use the formulas of DeepSpeed's own estimators,
``estimate_zero2_model_states_mem_needs`` (deepspeed/runtime/zero/stage_1_and_2.py) and
``estimate_zero3_model_states_mem_needs`` (deepspeed/runtime/zero/stage3.py); tests/test_memory.py
checks the figures against those functions. Activations per GPU, encoder layers only, for micro-batch
b, sequence s, hidden h, FFN width F, heads a, L layers, d bytes per activation (2 in bf16/fp16, 4 in
fp32) and 1-byte dropout masks (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", eq. 1, written for any F):

    per layer  = s*b*(d*(8h + 2F + 2a*s) + 2h + a*s)    eager attention (scores and their dropout kept)
               = s*b*(d*(8h + 2F) + 2h)                 SDPA / flash (no s x s matrices; transformers' default)
    no checkpointing:        L * per_layer
    gradient checkpointing:  L * d*s*b*h (each layer's input) + per_layer (one layer recomputed in backward)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from hf_itt.errors import ConfigError

GIB = 2**30
BUFFER_FACTOR = 1.5  # DeepSpeed's additional_buffer_factor default for CPU memory


@dataclass(frozen=True)
class EncoderShape:
    """The dimensions of a BERT / RoBERTa / DeBERTa-style encoder that decide its size.

    ``absolute_positions``: a learned position embedding per position (BERT, XLM-R; DeBERTa-v3 has none).
    ``relative_positions``: rows of DeBERTa's shared relative-position table (0: none), with its LayerNorm.
    ``relative_projections``: DeBERTa-v2 without ``share_att_key``: extra position key/query projections
    per layer (0, 1 or 2).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int = 1
    absolute_positions: bool = True
    relative_positions: int = 0
    relative_projections: int = 0


def _deberta_v3(vocab_size: int, hidden: int, layers: int, heads: int) -> EncoderShape:
    return EncoderShape(
        vocab_size,
        hidden,
        layers,
        heads,
        4 * hidden,
        512,
        type_vocab_size=0,
        absolute_positions=False,
        relative_positions=2 * 256,
    )


KNOWN_SHAPES = {  # public dimensions (their config.json), so the planner needs neither the Hub nor a download
    "xlm-roberta-large": EncoderShape(250_002, 1024, 24, 16, 4096, 514),
    "xlm-roberta-base": EncoderShape(250_002, 768, 12, 12, 3072, 514),
    "bert-base-uncased": EncoderShape(30_522, 768, 12, 12, 3072, 512, type_vocab_size=2),
    "bert-base-cased": EncoderShape(28_996, 768, 12, 12, 3072, 512, type_vocab_size=2),
    "bert-large-uncased": EncoderShape(30_522, 1024, 24, 16, 4096, 512, type_vocab_size=2),
    "bert-large-cased": EncoderShape(28_996, 1024, 24, 16, 4096, 512, type_vocab_size=2),
    "bert-base-multilingual-cased": EncoderShape(119_547, 768, 12, 12, 3072, 512, type_vocab_size=2),
    "deberta-v3-base": _deberta_v3(128_100, 768, 12, 12),
    "deberta-v3-large": _deberta_v3(128_100, 1024, 24, 16),
    "mdeberta-v3-base": _deberta_v3(251_000, 768, 12, 12),
}


def shape_from_config(config) -> EncoderShape:
    """An ``EncoderShape`` from a transformers config object or its ``config.json`` dict."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    relative = bool(get("relative_attention", False))
    relative_rows = 0
    if relative:
        buckets, max_relative = get("position_buckets", -1) or -1, get("max_relative_positions", -1) or -1
        relative_rows = 2 * (
            buckets if buckets > 0 else max_relative if max_relative > 0 else get("max_position_embeddings")
        )
    attention_types = get("pos_att_type") or []
    projections = (
        0 if get("share_att_key", False) or not relative else sum(kind in attention_types for kind in ("c2p", "p2c"))
    )
    type_vocab = get("type_vocab_size", None)
    try:
        return EncoderShape(
            get("vocab_size"),
            get("hidden_size"),
            get("num_hidden_layers"),
            get("num_attention_heads"),
            get("intermediate_size"),
            get("max_position_embeddings"),
            2 if type_vocab is None else int(type_vocab),
            absolute_positions=bool(get("position_biased_input", True)),
            relative_positions=relative_rows,
            relative_projections=projections,
        )
    except TypeError:
        raise ConfigError(
            "The model config lacks encoder dimensions (vocab_size, hidden_size, num_hidden_layers, "
            "num_attention_heads, intermediate_size, max_position_embeddings)."
        ) from None


def encoder_shape(model: str, config_json: str | Path | None = None) -> EncoderShape:
    """Known BERT / XLM-R / DeBERTa sizes by name (with or without their Hub namespace); otherwise a
    ``config.json`` file, a local folder or the Hub cache (offline)."""
    if config_json:
        path = Path(config_json)
        if not path.is_file():
            raise ConfigError(f"Model config file not found: {path}.")
        return shape_from_config(json.loads(path.read_text(encoding="utf-8")))
    name = model.split("/")[-1] if model.count("/") == 1 and not Path(model).exists() else model
    if name in KNOWN_SHAPES:
        return KNOWN_SHAPES[name]
    from transformers import AutoConfig

    try:
        return shape_from_config(AutoConfig.from_pretrained(model, local_files_only=True))
    except (OSError, ValueError):
        raise ConfigError(
            f"No config for model {model!r} offline: give a local folder, --config-json PATH, or one of "
            f"{', '.join(sorted(KNOWN_SHAPES))}."
        ) from None


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------

HEAD_KINDS = ("classification", "token", "qa", "choice")


def head_parameters(kind: str, hidden: int, num_labels: int) -> tuple[int, int]:
    """(parameters, largest module) of one head, shaped like transformers' XLM-R task heads.

    classification: dense h->h + out_proj h->labels (XLMRobertaClassificationHead); token: h->labels;
    qa: h->2; choice: h->1 (the multiple-choice head, which also needs the pooler).
    """
    if kind == "classification":
        dense, out = hidden * hidden + hidden, hidden * num_labels + num_labels
        return dense + out, max(dense, out)
    outputs = {"token": num_labels, "qa": 2, "choice": 1}.get(kind)
    if outputs is None:
        raise ConfigError(f"Unknown head kind {kind!r}; choose from {HEAD_KINDS}.")
    return hidden * outputs + outputs, hidden * outputs + outputs


@dataclass(frozen=True)
class ParameterCount:
    encoder: int
    heads: int
    largest_layer: int  # largest single module's own parameters (ZeRO-3 gathers one at a time)

    @property
    def total(self) -> int:
        return self.encoder + self.heads


def count_parameters(shape: EncoderShape, heads=(("classification", 3),), pooler: bool = False) -> ParameterCount:
    """Parameters of a ``BertModel`` / ``XLMRobertaModel`` / ``DebertaV2Model`` (+ optional pooler) and the
    given ``(kind, num_labels)`` heads."""
    h, f = shape.hidden_size, shape.intermediate_size
    layer_norm = 2 * h
    word, token_type = shape.vocab_size * h, shape.type_vocab_size * h
    position = shape.max_positions * h if shape.absolute_positions else 0
    relative = shape.relative_positions * h
    attention = (4 + shape.relative_projections) * (h * h + h) + layer_norm
    feed_forward = (h * f + f) + (f * h + h) + layer_norm
    encoder = word + position + token_type + layer_norm + shape.num_layers * (attention + feed_forward)
    encoder += (relative + layer_norm) if relative else 0
    encoder += (h * h + h) if pooler else 0
    head_counts = [head_parameters(kind, h, labels) for kind, labels in heads]
    largest = max(
        [word, position, token_type, relative, h * h + h, h * f + f, f * h + h] + [big for _, big in head_counts]
    )
    return ParameterCount(encoder, sum(n for n, _ in head_counts), largest)


# --------------------------------------------------------------------------------------------------
# Model states (DeepSpeed's formulas) and activations
# --------------------------------------------------------------------------------------------------


def zero2_model_states(total_params: int, gpus_per_node: int, nodes: int, offload: bool) -> tuple[int, int]:
    """(CPU bytes, GPU bytes) as deepspeed's ``estimate_zero2_model_states_mem_needs``."""
    total_gpus = nodes * gpus_per_node
    if offload:
        return int(total_params * max(4 * total_gpus, 16) * BUFFER_FACTOR), int(2 * total_params)
    # 2 bytes of 16-bit weights on every GPU; 18 = 16-bit + fp32 grads, fp32 master weights, 2 Adam moments, sharded
    gpu = 2 * total_params + int(18 * total_params / total_gpus)
    return int(total_params * 4 * gpus_per_node * BUFFER_FACTOR), int(gpu)


def zero3_model_states(
    total_params: int, largest_layer: int, gpus_per_node: int, nodes: int, offload: bool
) -> tuple[int, int]:
    """(CPU bytes, GPU bytes) as deepspeed's ``estimate_zero3_model_states_mem_needs`` with zero_init=True
    (the Trainer builds ZeRO-3 models under ``zero.Init``); ``offload`` moves parameters and optimizer."""
    largest_layer_memory = 4 * largest_layer
    if offload:
        return int(total_params * 18 / nodes * BUFFER_FACTOR), int(largest_layer_memory)
    gpu = largest_layer_memory + int(18 * total_params / (nodes * gpus_per_node))
    return int(largest_layer * 4 * gpus_per_node * BUFFER_FACTOR), int(gpu)


def model_states(params: ParameterCount, gpus_per_node: int = 1, nodes: int = 1) -> dict[str, tuple[int, int]]:
    """``{config name: (CPU bytes per node, GPU bytes per GPU)}`` for the four built-in presets."""
    total, largest = params.total, params.largest_layer
    return {
        "zero2": zero2_model_states(total, gpus_per_node, nodes, offload=False),
        "zero2_offload": zero2_model_states(total, gpus_per_node, nodes, offload=True),
        "zero3": zero3_model_states(total, largest, gpus_per_node, nodes, offload=False),
        "zero3_offload": zero3_model_states(total, largest, gpus_per_node, nodes, offload=True),
    }


def activation_bytes(
    shape: EncoderShape,
    batch: int,
    seq_len: int,
    bytes_per_value: int = 2,
    checkpointing: bool = False,
    attention: str = "sdpa",
    mask_bytes: int = 1,
) -> int:
    """Activation memory per GPU for one micro-batch (module docstring has the formula).

    ``mask_bytes``: CUDA's fused dropout keeps 1-byte masks; PyTorch's CPU dropout keeps full-width ones.
    """
    if attention not in ("sdpa", "eager"):
        raise ConfigError(f"attention must be 'sdpa' or 'eager', got {attention!r}.")
    h, f, a, s, d, m = shape.hidden_size, shape.intermediate_size, shape.num_heads, seq_len, bytes_per_value, mask_bytes
    scores = (d * 2 * a * s + m * a * s) if attention == "eager" else 0
    per_layer = s * batch * (d * (8 * h + 2 * f) + m * 2 * h) + s * batch * scores
    if checkpointing:
        return shape.num_layers * d * s * batch * h + per_layer
    return shape.num_layers * per_layer


# --------------------------------------------------------------------------------------------------
# Plan: the table and a recommendation
# --------------------------------------------------------------------------------------------------

# Fastest first: no offload beats offload; ZeRO-2 beats ZeRO-3 (fewer collectives); no recomputation beats it.
PREFERENCE = [
    ("zero2", False),
    ("zero2", True),
    ("zero3", False),
    ("zero3", True),
    ("zero2_offload", False),
    ("zero2_offload", True),
    ("zero3_offload", False),
    ("zero3_offload", True),
]
RESERVE_FRACTION = 0.10  # CUDA context, DeepSpeed buckets, allocator fragmentation


@dataclass
class MemoryPlan:
    model: str
    shape: EncoderShape
    params: ParameterCount
    gpus_per_node: int
    nodes: int
    batch: int
    seq_len: int
    bytes_per_value: int
    attention: str
    gpu_mem_gb: float
    states: dict[str, tuple[int, int]]
    activations: dict[bool, int]  # gradient checkpointing -> bytes

    def gpu_need(self, config: str, checkpointing: bool) -> int:
        return self.states[config][1] + self.activations[checkpointing]

    def recommendation(self) -> tuple[str, bool] | None:
        usable = self.gpu_mem_gb * GIB * (1 - RESERVE_FRACTION)
        return next(((c, gc) for c, gc in PREFERENCE if self.gpu_need(c, gc) <= usable), None)


def plan_memory(
    model: str = "xlm-roberta-large",
    gpus_per_node: int = 1,
    nodes: int = 1,
    batch: int = 4,
    seq_len: int = 256,
    bf16: bool = True,
    gpu_mem_gb: float = 80,
    heads=(("classification", 3),),
    pooler: bool = False,
    attention: str = "sdpa",
    config_json: str | None = None,
) -> MemoryPlan:
    shape = encoder_shape(model, config_json)
    params = count_parameters(shape, heads, pooler)
    d = 2 if bf16 else 4
    activations = {gc: activation_bytes(shape, batch, seq_len, d, gc, attention) for gc in (False, True)}
    return MemoryPlan(
        model,
        shape,
        params,
        gpus_per_node,
        nodes,
        batch,
        seq_len,
        d,
        attention,
        gpu_mem_gb,
        model_states(params, gpus_per_node, nodes),
        activations,
    )


def _gib(n: int) -> str:
    return f"{n / GIB:.2f}"


def format_plan(plan: MemoryPlan) -> str:
    s, p = plan.shape, plan.params
    gpus = f"{plan.nodes} node(s) x {plan.gpus_per_node} GPU(s)"
    lines = [
        f"{plan.model}: {s.num_layers} layers, hidden {s.hidden_size}, {s.num_heads} heads, FFN {s.intermediate_size}, "
        f"vocab {s.vocab_size:,}",
        f"parameters: {p.total:,} ({p.encoder:,} encoder + {p.heads:,} heads); largest layer {p.largest_layer:,}",
        f"setup: {gpus}; micro-batch {plan.batch} x {plan.seq_len} tokens per GPU, "
        f"{'bf16/fp16 activations (--bf16)' if plan.bytes_per_value == 2 else 'fp32 activations (--bf16 for bf16/fp16)'}"
        f", {plan.attention} attention",
        "",
        "| DeepSpeed config | model states per GPU (GiB) | CPU per node (GiB) | + activations (GiB) "
        "| + activations, grad. checkpointing (GiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (cpu, gpu) in plan.states.items():
        lines.append(
            f"| ds_configs/{name}.json | {_gib(gpu)} | {_gib(cpu)} | {_gib(plan.gpu_need(name, False))} "
            f"| {_gib(plan.gpu_need(name, True))} |"
        )
    lines += [
        "",
        f"activations per GPU: {_gib(plan.activations[False])} GiB, "
        f"{_gib(plan.activations[True])} GiB with gradient checkpointing (formula: python -m pydoc hf_itt.memory)",
    ]
    lines.append(_recommendation_line(plan))
    return "\n".join(lines)


def _recommendation_line(plan: MemoryPlan) -> str:
    usable = f"{plan.gpu_mem_gb * (1 - RESERVE_FRACTION):.0f} of {plan.gpu_mem_gb:g} GiB usable"
    choice = plan.recommendation()
    if choice is None:
        return f"recommendation ({usable}): nothing fits; lower --batch or --seq-len, or add GPUs."
    config, checkpointing = choice
    flag = "gradient_checkpointing=true" if checkpointing else "no gradient checkpointing"
    return (
        f"recommendation ({usable}): ds_configs/{config}.json, {flag} "
        f"(needs {_gib(plan.gpu_need(config, checkpointing))} GiB per GPU)"
    )


def _parse_head(text: str) -> tuple[str, int]:
    kind, _, labels = text.partition(":")
    if kind not in HEAD_KINDS:
        raise argparse.ArgumentTypeError(f"head kind must be one of {HEAD_KINDS}, got {kind!r}")
    return kind, int(labels or 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hf_itt.memory",
        description="Per-GPU memory of ZeRO-2/3 (+offload) for an encoder with heads, "
        "computed offline (BERT, XLM-R and DeBERTa shapes).",
    )
    parser.add_argument(
        "--model",
        default="xlm-roberta-large",
        help=f"a known name ({', '.join(sorted(KNOWN_SHAPES))}), a local folder or a cached Hub id",
    )
    parser.add_argument("--config-json", help="a config.json with the encoder dimensions (overrides --model)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--batch", type=int, default=4, help="micro-batch per GPU")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--bf16", action="store_true", help="bf16 or fp16 training: 2-byte activations (default: fp32)")
    parser.add_argument("--attention", choices=("sdpa", "eager"), default="sdpa")
    parser.add_argument(
        "--head",
        action="append",
        type=_parse_head,
        metavar="KIND[:LABELS]",
        help=f"a task head, repeatable; KIND in {HEAD_KINDS} (default: classification:3)",
    )
    parser.add_argument("--pooler", action="store_true", help="count the encoder's pooler layer")
    parser.add_argument("--gpu-mem-gb", type=float, default=80)
    args = parser.parse_args(argv)
    plan = plan_memory(
        args.model,
        args.gpus,
        args.nodes,
        args.batch,
        args.seq_len,
        args.bf16,
        args.gpu_mem_gb,
        args.head or [("classification", 3)],
        args.pooler,
        args.attention,
        args.config_json,
    )
    print(format_plan(plan))
    return 0


if __name__ == "__main__":
    import sys

    from hf_itt.cli import main as cli_main

    sys.exit(cli_main(["memory", *sys.argv[1:]]))
