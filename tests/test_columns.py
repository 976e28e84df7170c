"""The column contract of docs/columns.md is what loading, preprocessing, the collators and the trainer do."""

from __future__ import annotations

import re

import pytest

from hf_itt.task_types import get_type, type_names
from hf_itt.task_types.features import preprocess
from hf_itt.tasks.loading import load_split, resolve_labels
from hf_itt.tasks.registry import get_task
from scripts import docgen
from tests.test_task_loading import fixture_data_files

CONTRACT = {contract.task_type: contract for contract in docgen.column_contract()}
FIXTURE_TASK = {
    "classification": "mnli",
    "multiple_choice": "hellaswag",
    "extractive_qa": "squad_v1",
    "tagging": "udpos_en",
    "mlm": "mlm",
    "retrieval": "tatoeba",
}


def rows_and_spec(task_type: str):
    files = fixture_data_files(FIXTURE_TASK[task_type])
    spec = resolve_labels(get_task(FIXTURE_TASK[task_type]), files)
    role = "train" if "train" in files else "validation"
    if task_type == "retrieval":
        return load_split(
            spec, role, lang="de", data_files=files["validation"] if "validation" in files else files
        ), spec
    return load_split(spec, role, data_files=files), spec


def test_every_task_type_is_documented():
    assert set(CONTRACT) == set(type_names())
    for task_type, contract in CONTRACT.items():
        columns = get_type(task_type).columns
        documented = re.findall(r'"(\w+)":', docgen.split_schema(contract.rows)[0])
        assert (
            tuple(key for key in documented if key not in ("text", "answer_start") or task_type == "mlm")[
                : len(columns)
            ]
            == columns
        ), task_type
        for role, train in (("train", True), ("eval", False)):  # the documented features are the declared ones
            assert set(contract.feature_columns(role)) == set(get_type(task_type).feature_columns(train)), task_type


@pytest.mark.parametrize("task_type", sorted(FIXTURE_TASK))
def test_loading_and_preprocessing_give_the_documented_columns(task_type, tiny_tokenizer):
    rows, spec = rows_and_spec(task_type)
    assert tuple(rows.column_names) == get_type(task_type).columns
    contract = CONTRACT[task_type]
    roles = ("train", "eval") if task_type == "extractive_qa" else ("train",)
    for role in roles:
        features = preprocess(rows, spec, tiny_tokenizer, split_role=role)
        if get_type(task_type).trainable:  # what a user's dataset must hold to train: exactly these
            assert sorted(features.column_names) == sorted(contract.feature_columns(role)), (task_type, role)
        else:
            assert set(contract.feature_columns(role)) <= set(features.column_names)


def test_tagging_labels_only_the_first_piece_of_each_word(tiny_tokenizer):
    rows, spec = rows_and_spec("tagging")
    features = preprocess(rows, spec, tiny_tokenizer)
    encoded = tiny_tokenizer(
        list(rows["tokens"]), is_split_into_words=True, truncation=True, max_length=spec.max_length
    )
    for index, labels in enumerate(features["labels"]):
        words = encoded.word_ids(index)
        firsts = [
            word is not None and (position == 0 or words[position - 1] != word) for position, word in enumerate(words)
        ]
        assert [label != -100 for label in labels] == firsts
        assert [label for label in labels if label != -100] == rows[index]["tags"][: sum(firsts)]


def test_multiple_choice_holds_one_row_per_question_with_a_sequence_per_choice(tiny_tokenizer):
    rows, spec = rows_and_spec("multiple_choice")
    features = preprocess(rows, spec, tiny_tokenizer)
    assert len(features) == len(rows)
    for row, ids, label in zip(rows, features["input_ids"], features["labels"]):
        assert len(ids) == len(row["choices"]) == spec.num_choices and isinstance(ids[0], list)
        assert label == row["label"]


def test_qa_features_locate_answers_and_map_back_to_the_context(tiny_tokenizer):
    rows, spec = rows_and_spec("extractive_qa")
    train = preprocess(rows, spec, tiny_tokenizer, split_role="train", max_length=64, doc_stride=16)
    evaluation = preprocess(rows, spec, tiny_tokenizer, split_role="eval", max_length=64, doc_stride=16)
    assert len(train) == len(evaluation) > len(rows)  # long contexts: several windows, the same ones
    contexts = dict(zip(rows["id"], rows["context"]))
    answers = dict(zip(rows["id"], rows["answers"]))
    found = 0
    for position, (start, end) in enumerate(zip(train["start_positions"], train["end_positions"])):
        offsets = evaluation[position]["offset_mapping"]
        assert offsets[0] is None  # CLS and question tokens are outside the context
        if start == 0:  # the answer is not in this window
            continue
        example = evaluation[position]["example_id"]
        text = contexts[example][offsets[start][0] : offsets[end][1]]
        assert text.strip() == answers[example]["text"][0].strip()
        found += 1
    assert found >= len(rows)


def test_a_dataset_with_only_the_documented_columns_trains_every_head(tiny_checkpoint, tiny_tokenizer, tmp_path):
    from transformers import TrainingArguments

    from hf_itt.training.modeling import MultiTaskModel
    from hf_itt.training.trainer import MultiTaskTrainer

    train, heads = {}, {}
    for task_type in ("classification", "multiple_choice", "extractive_qa", "tagging", "mlm"):
        rows, spec = rows_and_spec(task_type)
        features = preprocess(rows, spec, tiny_tokenizer, max_length=64)
        train[task_type] = features.select_columns(CONTRACT[task_type].feature_columns("train"))
        heads[task_type] = spec
    model = MultiTaskModel.from_encoder(tiny_checkpoint, heads)
    args = TrainingArguments(
        str(tmp_path),
        max_steps=20,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        logging_steps=1,
    )
    trainer = MultiTaskTrainer(model, args, train_dataset=train, processing_class=tiny_tokenizer, sampler="uniform")
    trainer.train()
    trained = {key.removeprefix("loss_") for log in trainer.state.log_history for key in log if key.startswith("loss_")}
    assert trained == set(train)
