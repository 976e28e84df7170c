"""What a run prints: hf_itt's own warnings, one line each, and no library warning the user cannot act on.

Known-harmless warnings are dropped at their source, each by a filter on the logger that emits it and
matching that message only (everything else those libraries say still shows):

- transformers' ``LOAD REPORT`` when every key it lists is an UNEXPECTED weight of a pre-training head
  (``lm_head.*``, ``cls.*``, ``pooler.*``, ...): ``MultiTaskModel.from_encoder`` loads the bare encoder
  of a masked-LM checkpoint such as ``xlm-roberta-large`` on purpose, and its heads are new. A report
  with missing or mismatched keys, or any other unexpected key, is still printed.
- DeepSpeed's "Setting accelerator to CPU" on a machine without a GPU (printed when DeepSpeed is
  imported, also by runs that do not use it).

DDP's "find_unused_parameters=True ... did not find any unused parameters" is avoided, not filtered:
``MultiTaskTrainer`` asks DDP to look for unused parameters only when several heads train.
"""

from __future__ import annotations

import logging
import re
import sys

# Weights of pre-training / pooling heads that a bare encoder (AutoModel) does not have.
PRETRAINING_HEAD_PREFIXES = (
    "lm_head.",
    "cls.",
    "pooler.",
    "roberta.pooler.",
    "bert.pooler.",
    "lm_predictions.",
    "mask_predictions.",
    "deberta.pooler.",
    "qa_outputs.",
    "classifier.",
)
REPORT_ROW = re.compile(r"^(?P<key>\S+)\s*\|\s*(?:\x1b\[[0-9;]*m)?(?P<status>[A-Z]+)")
DEEPSPEED_CPU = "Setting accelerator to CPU"


def only_unused_head_weights(message: str) -> bool:
    """Whether a transformers LOAD REPORT lists nothing but unexpected pre-training-head weights."""
    if "LOAD REPORT" not in message:
        return False
    rows = [
        match for line in message.splitlines() if (match := REPORT_ROW.match(line.strip())) and match["key"] != "Key"
    ]
    return bool(rows) and all(
        row["status"] == "UNEXPECTED" and row["key"].startswith(PRETRAINING_HEAD_PREFIXES) for row in rows
    )


class UnusedHeadReportFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not only_unused_head_weights(record.getMessage())


class DeepSpeedCpuFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return DEEPSPEED_CPU not in record.getMessage()


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"hf_itt {record.levelname.lower()}: {record.getMessage()}"


_FILTERS = {"transformers.modeling_utils": UnusedHeadReportFilter(), "DeepSpeed": DeepSpeedCpuFilter()}


def install_warning_filters() -> None:
    """Add the filters above to their loggers (idempotent; before DeepSpeed is imported for its warning)."""
    for name, log_filter in _FILTERS.items():
        logger = logging.getLogger(name)
        if log_filter not in logger.filters:
            logger.addFilter(log_filter)


class _StderrHandler(logging.StreamHandler):
    """Writes to the sys.stderr of the moment (not the one at setup), so a CLI called in-process twice, or
    under a test runner that swaps the stream, never writes to a closed stream."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it
        pass


def setup_console() -> None:
    """The command line's logging: the filters, and hf_itt's warnings as ``hf_itt warning: ...`` lines."""
    install_warning_filters()
    logger = logging.getLogger("hf_itt")
    if not any(getattr(handler, "_hf_itt_console", False) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        handler._hf_itt_console = True
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


__all__ = ["install_warning_filters", "only_unused_head_weights", "setup_console"]
