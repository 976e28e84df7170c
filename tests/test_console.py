"""Quiet by default: known-harmless library warnings are dropped at their source (and only those),
tables never cut a name."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers

from hf_itt.console import install_warning_filters, only_unused_head_weights


@pytest.fixture
def transformers_logs(caplog):
    install_warning_filters()
    transformers.logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            yield caplog
    finally:
        transformers.logging.disable_propagation()


@pytest.fixture(scope="module")
def masked_lm_checkpoint(tiny_checkpoint, tmp_path_factory):
    """A checkpoint with a pre-training head, as xlm-roberta-large is on the Hub."""
    from transformers import AutoConfig, XLMRobertaForMaskedLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mlm-checkpoint")
    XLMRobertaForMaskedLM(AutoConfig.from_pretrained(tiny_checkpoint)).save_pretrained(folder)
    return folder


def test_encoder_from_a_masked_lm_checkpoint_loads_without_a_load_report(masked_lm_checkpoint, transformers_logs):
    from hf_itt.training.modeling import MultiTaskModel

    MultiTaskModel.from_encoder(masked_lm_checkpoint, {"nli": {"type": "classification", "num_labels": 3}})
    assert "LOAD REPORT" not in transformers_logs.text


def test_a_report_with_anything_else_is_still_shown(masked_lm_checkpoint, tiny_checkpoint, transformers_logs):
    from transformers import XLMRobertaForMaskedLM

    XLMRobertaForMaskedLM.from_pretrained(tiny_checkpoint)  # the LM head is MISSING: worth a warning
    assert "LOAD REPORT" in transformers_logs.text and "MISSING" in transformers_logs.text


def test_report_parsing_needs_every_row_to_be_an_unused_head():
    report = (
        "XLMRobertaModel LOAD REPORT from: x\nKey | Status | |\n----+----\n"
        "lm_head.bias | UNEXPECTED | |\nlm_head.dense.weight | \x1b[33mUNEXPECTED\x1b[0m | |\n\nNotes: ..."
    )
    assert only_unused_head_weights(report)
    assert not only_unused_head_weights(report.replace("lm_head.bias", "encoder.layer.0.bias"))
    assert not only_unused_head_weights(report.replace("UNEXPECTED | |\nlm_head.dense", "MISSING | |\nlm_head.dense"))
    assert not only_unused_head_weights("some other warning about lm_head.bias | UNEXPECTED")


def test_deepspeed_cpu_notice_is_dropped_other_deepspeed_warnings_are_not(caplog):
    install_warning_filters()
    logger = logging.getLogger("DeepSpeed")
    propagate = logger.propagate
    logger.propagate = True  # DeepSpeed turns propagation off; the filter acts before either
    try:
        with caplog.at_level(logging.WARNING, logger="DeepSpeed"):
            logger.warning(
                "Setting accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it."
            )
            logger.warning("ZeRO stage 3 needs more memory")
    finally:
        logger.propagate = propagate
    assert "Setting accelerator" not in caplog.text and "ZeRO stage 3" in caplog.text


def test_result_tables_never_cut_names(capsys):
    from hf_itt.evaluation.results import TaskResult
    from hf_itt.evaluation.results_table import print_results

    languages = {lang: {"accuracy": 50.0} for lang in ("en", "qa", "qb", "qc", "de", "fr", "sw", "th", "zh")}
    result = TaskResult(
        experiment="x",
        seed=0,
        base_model="b",
        metric_version="1",
        itt={},
        checkpoint="",
        task="a_rather_long_task_name",
        split="validation",
        primary_metric="tatoeba_accuracy",
        languages=languages,
    )
    print_results([result], title="itt-unrelated (seed 0): a_rather_long_task_name")
    out = capsys.readouterr().out
    assert "…" not in out and "a_rather_long_task_name" in out and "tatoeba_accuracy" in out and "validation" in out
