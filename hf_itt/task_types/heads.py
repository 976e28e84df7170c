"""One small head per task type, on top of the shared encoder's last hidden states.

Every head takes ``(hidden_states [N, L, H], **targets)`` and returns a dict with ``logits`` (QA:
``start_logits``/``end_logits``) and, when targets are given, ``loss``. The layouts follow the
``XLMRobertaFor*`` heads of transformers (and jiant's heads), so results are comparable with them:

classification   <s> state -> dropout, dense, tanh, dropout, out_proj  (RobertaClassificationHead)
multiple_choice  the same head with one output, applied per choice -> scores [B, n_choices]
extractive_qa    linear -> start / end logits over tokens
tagging          dropout, linear -> token logits; label -100 is ignored
mlm              dense, gelu, layer norm, decoder (weight tied to the input embeddings) + bias
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hf_itt.tasks.schema import CLASSIFICATION, EXTRACTIVE_QA, MLM, MULTIPLE_CHOICE, TAGGING

IGNORE_INDEX = -100


class ClassificationHead(nn.Module):
    """Sentence(-pair) classification from the first token; one output = regression (MSE)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)

    def scores(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.dropout(hidden_states[:, 0])
        x = torch.tanh(self.dense(x))
        return self.out_proj(self.dropout(x))

    def forward(self, hidden_states, labels=None, **_):
        logits = self.scores(hidden_states)
        if labels is None:
            return {"logits": logits}
        if logits.shape[-1] == 1:
            loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
        else:
            loss = F.cross_entropy(logits, labels.view(-1))
        return {"loss": loss, "logits": logits}


class MultipleChoiceHead(ClassificationHead):
    """Scores each (prompt, choice) sequence; the model flattens [B, n, L] to [B*n, L] before the encoder."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__(hidden_size, 1, dropout)

    def forward(self, hidden_states, labels=None, num_choices: int = 1, **_):
        logits = self.scores(hidden_states).view(-1, num_choices)
        if labels is None:
            return {"logits": logits}
        return {"loss": F.cross_entropy(logits, labels.view(-1)), "logits": logits}


class ExtractiveQAHead(nn.Module):
    """Start/end logits; positions outside the window are ignored like in XLMRobertaForQuestionAnswering."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)

    def forward(self, hidden_states, start_positions=None, end_positions=None, **_):
        start_logits, end_logits = self.qa_outputs(hidden_states).split(1, dim=-1)
        out = {"start_logits": start_logits.squeeze(-1).contiguous(),
               "end_logits": end_logits.squeeze(-1).contiguous()}
        if start_positions is None or end_positions is None:
            return out
        ignored = out["start_logits"].size(1)
        start = start_positions.view(-1).clamp(0, ignored)
        end = end_positions.view(-1).clamp(0, ignored)
        out["loss"] = (F.cross_entropy(out["start_logits"], start, ignore_index=ignored)
                       + F.cross_entropy(out["end_logits"], end, ignore_index=ignored)) / 2
        return out


class TaggingHead(nn.Module):
    """Token classification; only positions with a label other than -100 count."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden_states, labels=None, **_):
        logits = self.classifier(self.dropout(hidden_states))
        if labels is None:
            return {"logits": logits}
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=IGNORE_INDEX)
        return {"loss": loss, "logits": logits}


class MaskedLMHead(nn.Module):
    """XLM-R's LM head; ``decoder.weight`` is tied to the encoder's word embeddings by the model."""

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, hidden_states, labels=None, **_):
        logits = self.decoder(self.layer_norm(F.gelu(self.dense(hidden_states))))
        if labels is None:
            return {"logits": logits}
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1), ignore_index=IGNORE_INDEX)
        return {"loss": loss, "logits": logits}


def build_head(task_type: str, num_labels: int | None, encoder_config) -> nn.Module:
    """The head for ``task_type``, sized from the encoder config (hidden size, dropout, vocabulary)."""
    hidden = encoder_config.hidden_size
    dropout = getattr(encoder_config, "classifier_dropout", None)
    if dropout is None:
        dropout = getattr(encoder_config, "hidden_dropout_prob", 0.1)
    if task_type == CLASSIFICATION:
        return ClassificationHead(hidden, num_labels, dropout)
    if task_type == MULTIPLE_CHOICE:
        return MultipleChoiceHead(hidden, dropout)
    if task_type == EXTRACTIVE_QA:
        return ExtractiveQAHead(hidden)
    if task_type == TAGGING:
        return TaggingHead(hidden, num_labels, dropout)
    if task_type == MLM:
        return MaskedLMHead(hidden, encoder_config.vocab_size, getattr(encoder_config, "layer_norm_eps", 1e-5))
    raise ValueError(f"no head for task type {task_type!r}")
