"""MultiTaskModel: heads per task type, tying, save/load round trip, encoder export, checkpoint checks."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel

from hf_itt.errors import CheckpointError, ConfigError
from hf_itt.training.modeling import MultiTaskConfig, MultiTaskModel, head_spec

torch.set_num_threads(1)  # 2 shared cores: more threads only spin

TASKS = {
    "nli": {"type": "classification", "labels": ["entailment", "neutral", "contradiction"]},
    "copa": {"type": "multiple_choice", "num_choices": 2},
    "squad": {"type": "extractive_qa"},
    "pos": {"type": "tagging", "num_labels": 5},
    "mlm": {"type": "mlm"},
}


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    torch.manual_seed(0)
    return MultiTaskModel.from_encoder(tiny_checkpoint, TASKS).eval()


def batch(task_id: int, size: int = 3, length: int = 6, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (size, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "task_ids": torch.full((size,), task_id)}


def test_from_encoder_keeps_pretrained_weights_and_ties_mlm_decoder(model, tiny_checkpoint):
    encoder = AutoModel.from_pretrained(tiny_checkpoint)
    loaded = encoder.state_dict()
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, loaded[name]), name
    assert model.heads["mlm"].decoder.weight is model.encoder.get_input_embeddings().weight
    assert model.config.encoder._attn_implementation is not None
    assert model.task_names == list(TASKS)


def test_each_head_gives_its_outputs_and_a_loss(model):
    out = model(**batch(0), labels=torch.tensor([0, 1, 2]))
    assert out.logits.shape == (3, 3) and out.loss > 0

    mc = batch(1)
    mc = {
        "input_ids": mc["input_ids"][:, None].repeat(1, 2, 1),
        "attention_mask": mc["attention_mask"][:, None].repeat(1, 2, 1),
        "task_ids": mc["task_ids"],
    }
    out = model(**mc, labels=torch.tensor([0, 1, 1]))
    assert out.logits.shape == (3, 2) and out.loss > 0

    out = model(**batch(2), start_positions=torch.tensor([1, 2, 3]), end_positions=torch.tensor([2, 4, 5]))
    assert out.start_logits.shape == (3, 6) and out.end_logits.shape == (3, 6) and out.loss > 0
    assert out.logits is None

    tags = torch.full((3, 6), -100)
    tags[:, 1] = 4
    out = model(**batch(3), labels=tags)
    assert out.logits.shape == (3, 6, 5) and out.loss > 0

    inputs = batch(4)
    out = model(**inputs, labels=inputs["input_ids"])
    assert out.logits.shape == (3, 6, model.config.encoder.vocab_size)


def test_tagging_loss_ignores_minus_100(model):
    inputs = batch(3)
    tags = torch.full((3, 6), -100)
    tags[:, 2] = 1
    other = tags.clone()
    other[:, 4] = -100  # already ignored: same loss
    assert torch.equal(model(**inputs, labels=tags).loss, model(**inputs, labels=other).loss)
    changed = tags.clone()
    changed[:, 4] = 3
    assert not torch.equal(model(**inputs, labels=tags).loss, model(**inputs, labels=changed).loss)


def test_a_batch_must_hold_one_task(model):
    inputs = batch(0)
    inputs["task_ids"] = torch.tensor([0, 0, 3])
    with pytest.raises(ValueError, match="single task"):
        model(**inputs)
    inputs["task_ids"] = torch.tensor([9, 9, 9])
    with pytest.raises(ValueError, match="out of range"):
        model(**inputs)


def test_save_load_round_trip_keeps_outputs_and_shared_weights(model, tmp_path):
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()  # registered with AutoModel
    assert isinstance(reloaded, MultiTaskModel)
    assert reloaded.task_names == model.task_names  # config.json sorts keys; the id order survives
    assert reloaded.heads["mlm"].decoder.weight.data_ptr() == reloaded.encoder.get_input_embeddings().weight.data_ptr()
    for task_id in range(len(TASKS)):
        inputs = batch(task_id)
        if task_id == 1:
            inputs = {k: (v[:, None].repeat(1, 2, 1) if v.dim() == 2 else v) for k, v in inputs.items()}
        before, after = model(**inputs), reloaded(**inputs)
        for key in before.keys():
            assert torch.equal(before[key], after[key]), (task_id, key)


def test_export_encoder_loads_as_a_plain_automodel(model, tmp_path, tiny_tokenizer):
    model.export_encoder(tmp_path / "encoder", tokenizer=tiny_tokenizer)
    encoder = AutoModel.from_pretrained(tmp_path / "encoder").eval()
    assert not isinstance(encoder, MultiTaskModel)
    inputs = batch(0)
    expected = model.encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    got = encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    assert torch.equal(expected, got)
    assert (tmp_path / "encoder" / "tokenizer_config.json").is_file()
    # the next stage starts a fresh multi-task model from it
    nxt = MultiTaskModel.from_encoder(tmp_path / "encoder", {"paws": {"type": "classification", "num_labels": 2}})
    assert torch.equal(nxt.encoder.get_input_embeddings().weight, model.encoder.get_input_embeddings().weight)


def test_from_pretrained_checks_labels_and_adds_missing_heads(model, tmp_path):
    model.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="'nli' has 3 labels .* spec has 2"):
        MultiTaskModel.from_pretrained(tmp_path, tasks={"nli": {"type": "classification", "num_labels": 2}})
    with pytest.raises(CheckpointError, match="label"):
        MultiTaskModel.from_pretrained(
            tmp_path, tasks={"nli": {"type": "classification", "labels": ["contradiction", "entailment", "neutral"]}}
        )
    with pytest.raises(CheckpointError, match="is tagging in the checkpoint"):
        MultiTaskModel.from_pretrained(tmp_path, tasks={"pos": {"type": "classification", "num_labels": 5}})
    grown = MultiTaskModel.from_pretrained(
        tmp_path, tasks={"nli": TASKS["nli"], "ner": {"type": "tagging", "num_labels": 7}}
    )
    assert grown.task_names == [*TASKS, "ner"] and grown.heads["ner"].classifier.out_features == 7


def test_add_task_mlm_is_tied(tiny_checkpoint):
    model = MultiTaskModel.from_encoder(tiny_checkpoint, {"nli": TASKS["nli"]})
    head = model.add_task("mlm2", "mlm")
    assert head.decoder.weight is model.encoder.get_input_embeddings().weight
    with pytest.raises(ConfigError, match="already has a head"):
        model.add_task("nli", "classification", num_labels=3)


@pytest.mark.parametrize(
    "name, spec, message",
    [
        ("nli", {"type": "retrieval"}, "has no head"),
        ("a.b", {"type": "mlm"}, "invalid"),
        ("nli", {"type": "classification", "num_labels": 2, "labels": ["a", "b", "c"]}, "num_labels=2 but 3"),
        ("nli", {"type": "classification"}, "needs num_labels"),
    ],
)
def test_bad_task_specs_raise_config_error(name, spec, message):
    with pytest.raises(ConfigError, match=message):
        head_spec(name, spec)


def test_config_accepts_spec_objects():
    class Spec:
        type, labels = "tagging", ["O", "B-PER", "I-PER"]

    config = MultiTaskConfig(
        encoder={
            "model_type": "xlm-roberta",
            "vocab_size": 10,
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "intermediate_size": 8,
        },
        tasks={"ner": Spec()},
    )
    assert config.tasks["ner"] == {"type": "tagging", "num_labels": 3, "labels": ["O", "B-PER", "I-PER"]}
