"""The memory planner against DeepSpeed's own estimators and against instantiated models."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from hf_itt import memory
from hf_itt.errors import ConfigError
from hf_itt.memory import (
    KNOWN_SHAPES,
    activation_bytes,
    count_parameters,
    encoder_shape,
    model_states,
    plan_memory,
    shape_from_config,
    zero2_model_states,
    zero3_model_states,
)

TINY = memory.EncoderShape(
    vocab_size=120, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_positions=40
)
LARGE = count_parameters(KNOWN_SHAPES["xlm-roberta-large"])
SETUPS = [(1, 1), (8, 1), (4, 2)]  # (gpus per node, nodes)
REPO = Path(__file__).resolve().parents[1]


def _hf_config(shape: memory.EncoderShape, **kwargs):
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_positions,
        type_vocab_size=shape.type_vocab_size,
        **kwargs,
    )


# --- DeepSpeed's estimators ------------------------------------------------------------------------


@pytest.mark.parametrize("gpus, nodes", SETUPS)
@pytest.mark.parametrize("offload", [False, True])
def test_model_states_equal_deepspeed_estimators(gpus, nodes, offload):
    stage2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
    from deepspeed.runtime.zero import stage3

    total, largest = LARGE.total, LARGE.largest_layer
    assert zero2_model_states(total, gpus, nodes, offload) == stage2.estimate_zero2_model_states_mem_needs(
        total, num_gpus_per_node=gpus, num_nodes=nodes, cpu_offload=offload
    )
    expected_cpu, expected_gpu, _ = stage3.estimate_zero3_model_states_mem_needs(
        total,
        largest,
        num_gpus_per_node=gpus,
        num_nodes=nodes,
        cpu_offload=offload,
        cpu_offload_params=offload,
        zero_init=True,
    )
    assert zero3_model_states(total, largest, gpus, nodes, offload) == (expected_cpu, expected_gpu)


def _printed_rows(text: str) -> dict[str, tuple[str, str]]:
    """DeepSpeed's printed table: {options: (cpu GB, gpu GB)}."""
    rows = re.findall(r"^\s*([\d.]+)GB \|\s*([\d.]+)GB \| (.+)$", text, flags=re.M)
    # Python >= 3.11 formats DeepSpeed's enum as "OffloadDeviceEnum.cpu"
    return {re.sub(r"\s+|OffloadDeviceEnum\.", "", options): (cpu, gpu) for cpu, gpu, options in rows}


@pytest.mark.parametrize("gpus, nodes", SETUPS)
def test_table_matches_what_deepspeed_prints(gpus, nodes, capsys):
    stage2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
    from deepspeed.runtime.zero import stage3

    stage2.estimate_zero2_model_states_mem_needs_all_cold(LARGE.total, num_gpus_per_node=gpus, num_nodes=nodes)
    stage3.estimate_zero3_model_states_mem_needs_all_cold(
        LARGE.total, LARGE.largest_layer, num_gpus_per_node=gpus, num_nodes=nodes
    )
    printed = _printed_rows(capsys.readouterr().out)
    ours = {
        name: (f"{cpu / 2**30:.2f}", f"{gpu / 2**30:.2f}")
        for name, (cpu, gpu) in model_states(LARGE, gpus, nodes).items()
    }
    assert ours["zero2"] == printed["offload_optimizer=none"]
    assert ours["zero2_offload"] == printed["offload_optimizer=cpu"]
    assert ours["zero3"] == printed["offload_param=none,offload_optimizer=none,zero_init=1"]
    assert ours["zero3_offload"] == printed["offload_param=cpu,offload_optimizer=cpu,zero_init=1"]


# --- parameter counts ------------------------------------------------------------------------------------


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "model_class, heads, pooler",
    [
        ("XLMRobertaModel", [], False),
        ("XLMRobertaModel", [], True),
        ("XLMRobertaForSequenceClassification", [("classification", 3)], False),
        ("XLMRobertaForTokenClassification", [("token", 17)], False),
        ("XLMRobertaForQuestionAnswering", [("qa", 2)], False),
        ("XLMRobertaForMultipleChoice", [("choice", 1)], True),
    ],
)
def test_count_equals_instantiated_tiny_model(model_class, heads, pooler):
    import transformers
    from deepspeed.runtime.zero.stage3 import model_to_params

    config = _hf_config(TINY, num_labels=heads[0][1] if heads else 2)
    cls = getattr(transformers, model_class)
    model = cls(config, add_pooling_layer=pooler) if model_class == "XLMRobertaModel" else cls(config)
    counted = count_parameters(TINY, heads, pooler=pooler)
    assert counted.total == _numel(model)
    assert (counted.total, counted.largest_layer) == model_to_params(model)


def _family_model(shape: memory.EncoderShape, **extra):
    """The transformers encoder of ``shape``'s family: DeBERTa-v2/v3 when it has relative positions."""
    from transformers import (
        BertConfig,
        BertModel,
        DebertaV2Config,
        DebertaV2Model,
        XLMRobertaModel,
    )

    dims = dict(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_positions,
        type_vocab_size=shape.type_vocab_size,
    )
    if shape.relative_positions:
        config = DebertaV2Config(
            **dims,
            relative_attention=True,
            position_buckets=shape.relative_positions // 2,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=shape.absolute_positions,
            **extra,
        )
        return config, DebertaV2Model(config)
    if shape.type_vocab_size == 2:
        config = BertConfig(**dims, **extra)
        return config, BertModel(config, add_pooling_layer=False)
    config = _hf_config(shape, **extra)
    return config, XLMRobertaModel(config, add_pooling_layer=False)


@pytest.mark.parametrize("name", sorted(KNOWN_SHAPES))
def test_known_sizes_equal_the_real_architecture(name):
    shape = KNOWN_SHAPES[name]
    with torch.device("meta"):  # full size, no memory
        config, model = _family_model(shape)
    assert count_parameters(shape, heads=[]).total == _numel(model)
    assert shape_from_config(config.to_dict()) == shape  # the same shape read back from its config.json


def test_deberta_v2_without_shared_attention_keys_counts_its_position_projections():
    from transformers import DebertaV2Config, DebertaV2Model

    config = DebertaV2Config(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        relative_attention=True,
        max_relative_positions=-1,
        pos_att_type=["c2p", "p2c"],
        share_att_key=False,
        norm_rel_ebd="layer_norm",
        type_vocab_size=0,
    )
    shape = shape_from_config(config)
    assert shape.relative_projections == 2 and shape.absolute_positions
    assert count_parameters(shape, heads=[]).total == _numel(DebertaV2Model(config))


def test_readme_memory_table_is_what_its_command_prints_in_the_stated_dtype(capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = re.search(r"`python -m hf_itt\.memory (--model xlm-roberta-large[^`]*)`", readme)[1].split()
    assert "--bf16" in command and "bf16 activations" in readme
    table = {row[0]: row[1:] for row in re.findall(r"^\| (zero\w+) \| ([\d. /]+) \| ([\d. /]+) \|$", readme, re.M)}
    assert set(table) == {"zero2", "zero2_offload", "zero3", "zero3_offload"}
    for column, gpus in enumerate(("1", "8")):
        memory.main([*[a for a in command if a not in ("--gpus", "8")], "--gpus", gpus])
        out = capsys.readouterr().out
        assert "bf16/fp16 activations" in out
        for name, cells in table.items():
            row = re.search(rf"^\| ds_configs/{name}\.json \| (.+) \|$", out, re.M)[1]
            assert " / ".join(row.split(" | ")) == cells[column].strip(), (name, gpus)


def test_head_count_adds_up():
    base = count_parameters(TINY, heads=[]).total
    joint = count_parameters(TINY, heads=[("classification", 3), ("qa", 2), ("token", 9)]).total
    h = TINY.hidden_size
    assert joint - base == (h * h + h + 3 * h + 3) + (2 * h + 2) + (9 * h + 9)


# --- activations ------------------------------------------------------------------------------------------


def test_activation_formula_matches_saved_tensors_of_a_real_forward():
    """Eager attention in fp32 on CPU, where dropout masks are stored full width (mask_bytes=4)."""
    from transformers import XLMRobertaModel

    torch.manual_seed(0)
    model = XLMRobertaModel(_hf_config(TINY, attn_implementation="eager"), add_pooling_layer=False).train()
    parameter_storage = {p.data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def record(tensor):
        if tensor.data_ptr() not in parameter_storage:
            saved.setdefault(tensor.data_ptr(), tensor.numel() * tensor.element_size())
        return tensor

    batch, seq_len = 3, 24
    hidden = model.embeddings(input_ids=torch.randint(5, TINY.vocab_size, (batch, seq_len))).detach().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(record, lambda tensor: tensor):
        model.encoder(hidden)
    formula = activation_bytes(TINY, batch, seq_len, bytes_per_value=4, attention="eager", mask_bytes=4)
    assert sum(saved.values()) == pytest.approx(formula, rel=0.02)  # LayerNorm's mean/rstd are not in the formula


def test_checkpointing_and_sdpa_need_less():
    full = activation_bytes(TINY, 4, 128, attention="eager")
    assert activation_bytes(TINY, 4, 128, attention="sdpa") < full
    assert activation_bytes(TINY, 4, 128, attention="eager", checkpointing=True) < full
    assert activation_bytes(TINY, 8, 128) == 2 * activation_bytes(TINY, 4, 128)
    with pytest.raises(ConfigError, match="attention"):
        activation_bytes(TINY, 4, 128, attention="flash")


# --- plan and CLI -----------------------------------------------------------------------------------------


def test_recommendation_moves_to_cheaper_setups_as_memory_shrinks():
    order = [choice for choice in memory.PREFERENCE]
    picks = [plan_memory(gpu_mem_gb=gb, batch=16, seq_len=512).recommendation() for gb in (80, 16, 12, 4, 2)]
    ranks = [order.index(pick) for pick in picks if pick is not None]
    assert ranks == sorted(ranks) and ranks[0] == 0
    assert plan_memory(gpu_mem_gb=0.5).recommendation() is None


def test_cli_prints_table_and_recommendation(capsys):
    memory.main(["--model", "xlm-roberta-large", "--gpus", "8", "--bf16", "--head", "qa", "--head", "classification:3"])
    out = capsys.readouterr().out
    for name in ("zero2", "zero2_offload", "zero3", "zero3_offload"):
        assert f"| ds_configs/{name}.json |" in out
    assert "recommendation (72 of 80 GiB usable): ds_configs/zero2.json" in out
    assert f"{count_parameters(KNOWN_SHAPES['xlm-roberta-large'], [('qa', 2), ('classification', 3)]).total:,}" in out


def test_shapes_from_config_json_and_errors(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_hf_config(TINY).to_dict()))
    assert encoder_shape("anything", config_json=path) == TINY
    assert shape_from_config(_hf_config(TINY)) == TINY
    assert encoder_shape("FacebookAI/xlm-roberta-base") == KNOWN_SHAPES["xlm-roberta-base"]
    with pytest.raises(ConfigError, match="not found"):
        encoder_shape("x", config_json=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="offline"):
        encoder_shape(str(tmp_path / "no-such-model"))
    assert encoder_shape("google-bert/bert-base-uncased") == KNOWN_SHAPES["bert-base-uncased"]
    assert encoder_shape("microsoft/mdeberta-v3-base") == KNOWN_SHAPES["mdeberta-v3-base"]


@pytest.mark.parametrize(
    "model, code", [("bert-base-multilingual-cased", 0), ("microsoft/deberta-v3-large", 0), ("no-org/no-such-model", 2)]
)
def test_memory_command_plans_bert_and_deberta_and_fails_in_one_line(model, code):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "hf_itt.memory", "--model", model],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == code, done.stderr
    if code:
        assert done.stderr.startswith("hf_itt error: No config for model") and "Traceback" not in done.stderr
    else:
        assert "fp32 activations" in done.stdout and "recommendation" in done.stdout
