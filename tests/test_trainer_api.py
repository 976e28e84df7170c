"""MultiTaskTrainer called the way an HF user calls a Trainer: train_dataset / eval_dataset, predict(ds),
evaluate(eval_dataset=ds), MultiTaskTrainingArguments, one on_evaluate per evaluation, clear errors."""

from __future__ import annotations

import logging

import pytest
from datasets import concatenate_datasets
from transformers import (
    EarlyStoppingCallback,
    HfArgumentParser,
    TrainerCallback,
    TrainingArguments,
)

from hf_itt.errors import ConfigError
from hf_itt.training.arguments import MultiTaskTrainingArguments
from hf_itt.training.trainer import MultiTaskTrainer
from tests.test_trainer import accuracy, toy_args, toy_dataset, toy_model

TASKS = ("nli", "copa")
PAIR = ("nli", "rte")  # two classification heads: their rows fit one table with a task column


def pair_model(checkpoint):
    import torch

    from hf_itt.training.modeling import MultiTaskModel

    torch.manual_seed(0)
    return MultiTaskModel.from_encoder(checkpoint, {t: {"type": "classification", "num_labels": 3} for t in PAIR})


def pair_data(size: int, seed: int = 0) -> dict:
    return {t: toy_dataset("nli", size, seed + i) for i, t in enumerate(PAIR)}


def with_task(dataset, task: str):
    return dataset.add_column("task", [task] * len(dataset))


def losses(trainer) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


def test_train_dataset_dict_task_column_and_legacy_name_train_the_same(tiny_checkpoint, tiny_tokenizer, tmp_path):
    train = pair_data(24)
    runs = []
    for keywords in (
        {"train_dataset": train},
        {"train_datasets": train},
        {"train_dataset": concatenate_datasets([with_task(train[t], t) for t in PAIR])},
    ):
        trainer = MultiTaskTrainer(
            pair_model(tiny_checkpoint),
            toy_args(tmp_path, max_steps=4, logging_steps=1),
            processing_class=tiny_tokenizer,
            **keywords,
        )
        assert {t: len(d) for t, d in trainer.train_datasets.items()} == {"nli": 24, "rte": 24}
        assert "task" not in trainer.train_datasets["nli"].column_names
        trainer.train()
        runs.append(losses(trainer))
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) == 4


def test_task_ids_column_and_single_head_model_take_one_dataset(tiny_checkpoint, tiny_tokenizer, tmp_path):
    mixed = concatenate_datasets(
        [
            toy_dataset("nli", 6).add_column("task_ids", [1] * 6),
            toy_dataset("nli", 4, 1).add_column("task_ids", [0] * 4),
        ]
    )
    trainer = MultiTaskTrainer(
        pair_model(tiny_checkpoint), toy_args(tmp_path), train_dataset=mixed, processing_class=tiny_tokenizer
    )
    assert {t: len(d) for t, d in trainer.train_datasets.items()} == {"rte": 6, "nli": 4}
    single = MultiTaskTrainer(
        toy_model(tiny_checkpoint, ("nli",)),
        toy_args(tmp_path),
        train_dataset=toy_dataset("nli", 8),
        eval_dataset=toy_dataset("nli", 4, 1),
        processing_class=tiny_tokenizer,
    )
    assert list(single.train_datasets) == ["nli"] and list(single.eval_datasets) == ["nli"]


def test_evaluate_and_predict_on_a_dataset_with_its_task(tiny_checkpoint, tiny_tokenizer, tmp_path):
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, (*TASKS, "squad")),
        toy_args(tmp_path),
        train_dataset={t: toy_dataset(t, 8) for t in TASKS},
        processing_class=tiny_tokenizer,
        compute_metrics=accuracy,
        compute_metrics_per_task={"squad": lambda p: {"n": 1.0}},
    )
    nli, copa = toy_dataset("nli", 10, 1), toy_dataset("copa", 6, 1)
    label_names = list(trainer.label_names)
    by_name = trainer.evaluate(eval_dataset=nli, task="nli")
    assert {"eval_nli_accuracy", "eval_nli_loss", "eval_loss", "eval_average"} <= set(by_name)
    by_dict = trainer.evaluate(eval_dataset={"nli": nli, "copa": copa})
    assert by_dict["eval_nli_accuracy"] == by_name["eval_nli_accuracy"] and "eval_copa_accuracy" in by_dict
    assert by_dict["eval_average"] == pytest.approx((by_dict["eval_nli_accuracy"] + by_dict["eval_copa_accuracy"]) / 2)
    assert trainer.evaluate(eval_dataset=with_task(copa, "copa")).keys() >= {"eval_copa_accuracy", "eval_average"}

    predicted = trainer.predict(with_task(copa, "copa"))
    assert predicted.predictions.shape == (6, 3) and "test_copa_accuracy" in predicted.metrics
    squad = trainer.predict(toy_dataset("squad", 5, 2), task="squad")
    assert squad.predictions[0].shape[0] == 5 and squad.metrics["test_squad_n"] == 1.0
    assert trainer.predict_task("nli", nli).metrics.keys() == trainer.predict(nli, task="nli").metrics.keys()
    assert trainer.compute_metrics is accuracy and trainer.label_names == label_names  # restored after each task


def test_a_task_column_of_several_tasks_is_split_for_evaluation(tiny_checkpoint, tiny_tokenizer, tmp_path):
    trainer = MultiTaskTrainer(
        pair_model(tiny_checkpoint),
        toy_args(tmp_path),
        train_dataset=pair_data(8),
        processing_class=tiny_tokenizer,
        compute_metrics=accuracy,
    )
    dev = pair_data(6, 5)
    separate = trainer.evaluate(eval_dataset=dev)
    mixed = trainer.evaluate(eval_dataset=concatenate_datasets([with_task(dev[t], t) for t in PAIR]))
    assert {k: v for k, v in mixed.items() if "accuracy" in k or "average" in k} == {
        k: v for k, v in separate.items() if "accuracy" in k or "average" in k
    }
    assert {"eval_nli_accuracy", "eval_rte_accuracy"} <= set(mixed)


def test_wrong_calls_name_the_call_that_works(tiny_checkpoint, tiny_tokenizer, tmp_path):
    model = toy_model(tiny_checkpoint, TASKS)
    with pytest.raises(ConfigError, match=r"train_dataset=\{'<head>': dataset, \.\.\.\}.*'task' column"):
        MultiTaskTrainer(
            model, toy_args(tmp_path), train_dataset=toy_dataset("nli", 4), processing_class=tiny_tokenizer
        )
    with pytest.raises(ConfigError, match="not both"):
        MultiTaskTrainer(
            model,
            toy_args(tmp_path),
            train_dataset={"nli": toy_dataset("nli", 4)},
            train_datasets={"nli": toy_dataset("nli", 4)},
            processing_class=tiny_tokenizer,
        )
    with pytest.raises(ConfigError, match="task 'mnli' has no head.*heads: nli, copa"):
        MultiTaskTrainer(
            model,
            toy_args(tmp_path),
            train_dataset=with_task(toy_dataset("nli", 4), "mnli"),
            processing_class=tiny_tokenizer,
        )
    trainer = MultiTaskTrainer(
        model, toy_args(tmp_path), train_dataset={"nli": toy_dataset("nli", 4)}, processing_class=tiny_tokenizer
    )
    with pytest.raises(ConfigError, match=r"trainer\.predict\(ds, task='<head>'\)"):
        trainer.predict(toy_dataset("nli", 4))
    pair = MultiTaskTrainer(
        pair_model(tiny_checkpoint), toy_args(tmp_path), train_dataset=pair_data(4), processing_class=tiny_tokenizer
    )
    mixed = concatenate_datasets([with_task(toy_dataset("nli", 3), "nli"), with_task(toy_dataset("nli", 3), "rte")])
    with pytest.raises(ConfigError, match=r"rows of 2 tasks \(nli, rte\).*once per task"):
        pair.predict(mixed)
    with pytest.raises(ConfigError, match="holds rows of nli, rte but task='nli'"):
        pair.predict(mixed, task="nli")
    with pytest.raises(ConfigError, match=r"trainer\.evaluate\(eval_dataset=ds, task='<head>'\)"):
        trainer.evaluate(eval_dataset=toy_dataset("nli", 4))
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        trainer.evaluate()
    with pytest.raises(TypeError):  # Trainer.train takes no **kwargs: a misspelt argument is an error
        trainer.train(resume_from_checkpoints=True)


class RecordEvaluations(TrainerCallback):
    def __init__(self):
        self.calls: list[dict] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.calls.append(dict(metrics))


def test_callbacks_see_one_on_evaluate_with_every_task_and_early_stopping_stays_quiet(
    tiny_checkpoint, tiny_tokenizer, tmp_path, caplog
):
    import transformers

    record = RecordEvaluations()
    args = toy_args(
        tmp_path,
        max_steps=8,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        load_best_model_at_end=True,
        metric_for_best_model="average",
    )
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS),
        args,
        train_dataset={t: toy_dataset(t, 32) for t in TASKS},
        eval_dataset={t: toy_dataset(t, 8, 1) for t in TASKS},
        processing_class=tiny_tokenizer,
        compute_metrics=accuracy,
        callbacks=[record, EarlyStoppingCallback(early_stopping_patience=100)],
    )
    transformers.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            trainer.train()
    finally:
        transformers.logging.disable_propagation()
    assert len(record.calls) == 4  # one per evaluation, not one per task
    for metrics in record.calls:
        assert {"eval_nli_accuracy", "eval_copa_accuracy", "eval_average", "eval_loss"} <= set(metrics)
    assert "early stopping" not in caplog.text.lower()
    eval_logs = [log for log in trainer.state.log_history if "eval_average" in log]
    assert len(eval_logs) == 4 and all("eval_copa_loss" in log for log in eval_logs)  # one log line each


def test_evaluating_task_context_restores_the_trainer_settings(tiny_checkpoint, tiny_tokenizer, tmp_path):
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, (*TASKS, "squad")),
        toy_args(tmp_path),
        train_dataset={"nli": toy_dataset("nli", 4)},
        processing_class=tiny_tokenizer,
        compute_metrics_per_task={"squad": accuracy},
    )
    before = (trainer.compute_metrics, list(trainer.label_names))
    with pytest.raises(RuntimeError):
        with trainer.evaluating_task("squad"):
            assert trainer.compute_metrics is accuracy
            assert trainer.label_names == ["start_positions", "end_positions"]
            raise RuntimeError("boom")
    assert (trainer.compute_metrics, trainer.label_names) == before
    assert "on_evaluate" not in vars(trainer.callback_handler)


# ----------------------------------------------------------------------------- MultiTaskTrainingArguments


def test_sampling_settings_come_from_multitask_training_arguments(tiny_checkpoint, tiny_tokenizer, tmp_path):
    train = {"nli": toy_dataset("nli", 40), "copa": toy_dataset("copa", 10)}
    args = MultiTaskTrainingArguments(
        str(tmp_path),
        task_sampling="temperature",
        sampling_temperature=4.0,
        steps_per_epoch=3,
        same_task_per_update=False,
        report_to=[],
        use_cpu=True,
    )
    trainer = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS), args, train_dataset=train, processing_class=tiny_tokenizer
    )
    assert trainer.task_sampler.config() == {
        "strategy": "temperature",
        "temperature": 4.0,
        "task_sizes": {"nli": 40, "copa": 10},
    }
    assert trainer.steps_per_epoch == 3 and trainer.same_task_per_update is False
    explicit = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS),
        args,
        train_dataset=train,
        sampler="capped",
        sampler_kwargs={"cap": 20},
        processing_class=tiny_tokenizer,
    )
    assert explicit.task_sampler.config()["strategy"] == "capped"  # the trainer's keywords win
    plain = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS),
        TrainingArguments(str(tmp_path), report_to=[]),
        train_dataset=train,
        processing_class=tiny_tokenizer,
    )
    assert plain.task_sampler.config()["strategy"] == "proportional" and plain.same_task_per_update is True


def test_multitask_training_arguments_parse_from_the_command_line(tmp_path):
    (args,) = HfArgumentParser(MultiTaskTrainingArguments).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--task_sampling",
            "weights",
            "--sampling_weights",
            '{"nli": 2, "copa": 1}',
            "--learning_rate",
            "3e-5",
            "--report_to",
            "none",
        ]
    )
    assert args.sampler_options()["weights"] == {"nli": 2, "copa": 1} and args.learning_rate == 3e-5
    assert args.to_dict()["task_sampling"] == "weights"
    with pytest.raises(ConfigError, match="task_sampling 'temprature' is unknown"):
        MultiTaskTrainingArguments(str(tmp_path), task_sampling="temprature")


def test_ddp_searches_unused_parameters_only_when_several_heads_train(tiny_checkpoint, tiny_tokenizer, tmp_path):
    one = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS),
        toy_args(tmp_path),
        train_dataset={"nli": toy_dataset("nli", 4)},
        processing_class=tiny_tokenizer,
    )
    two = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS),
        toy_args(tmp_path),
        train_dataset={t: toy_dataset(t, 4) for t in TASKS},
        processing_class=tiny_tokenizer,
    )
    kept = MultiTaskTrainer(
        toy_model(tiny_checkpoint, TASKS),
        toy_args(tmp_path, ddp_find_unused_parameters=True),
        train_dataset={"nli": toy_dataset("nli", 4)},
        processing_class=tiny_tokenizer,
    )
    assert (
        one.args.ddp_find_unused_parameters,
        two.args.ddp_find_unused_parameters,
        kept.args.ddp_find_unused_parameters,
    ) == (False, True, True)
