"""Length-grouped batches are the presets' default; `defaults.group_by_length: false` turns them off."""

from pathlib import Path

from test_trainer import toy_args, toy_dataset, toy_model

from hf_itt.config.loading import load_experiment
from hf_itt.config.presets import all_presets
from hf_itt.pipeline.jobs import build_jobs
from hf_itt.training.trainer import MultiTaskTrainer

SEQ = Path(__file__).resolve().parents[1] / "run_scripts" / "paper" / "seq_squad_mnli.yaml"
LOCAL = ["hub.publisher=local"]


def test_every_preset_groups_batches_by_length():
    for name, preset in all_presets().items():
        assert preset["training"]["train_sampling_strategy"] == "group_by_length", name


def test_the_switch_turns_it_off_and_a_stage_setting_wins():
    grouped = build_jobs(load_experiment(SEQ, LOCAL))
    plain = build_jobs(load_experiment(SEQ, [*LOCAL, "defaults.group_by_length=false"]))
    own = build_jobs(
        load_experiment(
            SEQ, [*LOCAL, "defaults.group_by_length=false", "stages.0.training.train_sampling_strategy=group_by_length"]
        )
    )
    assert grouped[0].training["train_sampling_strategy"] == "group_by_length"
    assert "train_sampling_strategy" not in plain[0].training  # TrainingArguments' default: random batches
    assert grouped[0].identity["training_args"]["train_sampling_strategy"] == "group_by_length"
    assert plain[0].identity["training_args"]["train_sampling_strategy"] == "random"
    assert grouped[0].stage_hash != plain[0].stage_hash  # batch composition changes the weights
    assert own[0].stage_hash == grouped[0].stage_hash
    for job in grouped:  # targets use a preset too
        if job.kind == "target" and not job.is_retrieval:
            assert job.training["train_sampling_strategy"] == "group_by_length"


def padded_tokens(trainer: MultiTaskTrainer, data) -> int:
    lengths = [len(ids) for ids in data["input_ids"]]
    return sum(len(batch) * max(lengths[i] for i in batch) for batch in trainer.build_batch_sampler())


def test_the_trainer_groups_batches_by_length(tiny_checkpoint, tiny_tokenizer, tmp_path):
    strategy, data = "group_by_length", toy_dataset("nli", 400)
    trainers = {
        name: MultiTaskTrainer(
            toy_model(tiny_checkpoint, ("nli",)),
            toy_args(tmp_path / name, num_train_epochs=1, train_sampling_strategy=name),
            train_datasets={"nli": data},
            processing_class=tiny_tokenizer,
        )
        for name in (strategy, "random")
    }
    grouped, random = (trainers[name].build_batch_sampler() for name in (strategy, "random"))
    assert grouped.lengths is not None and random.lengths is None
    assert sorted(i for batch in grouped for i in batch) == list(range(400))  # every example once per epoch
    assert padded_tokens(trainers[strategy], data) < 0.95 * padded_tokens(trainers["random"], data)
