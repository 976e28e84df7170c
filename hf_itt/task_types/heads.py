"""The heads of the built-in trainable types, on top of the shared encoder's last hidden states.

Each type module picks its head here (``TaskType.build_head``); the torch import lives in this module
so that the type registry stays importable without torch (``hf-itt tasks``, config validation).
Every head takes ``(hidden_states [N, L, H], **targets)`` and returns a dict with ``logits`` (QA:
``start_logits``/``end_logits``) and, when targets are given, ``loss``. The layouts follow the
``XLMRobertaFor*`` heads of transformers (and jiant's heads), so results are comparable with them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from hf_itt.task_types.tagging_features import IGNORE_INDEX


def head_dropout(encoder_config) -> float:
    dropout = getattr(encoder_config, "classifier_dropout", None)
    return getattr(encoder_config, "hidden_dropout_prob", 0.1) if dropout is None else dropout


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
    """Scores each (prompt, choice) sequence; ``forward`` gets the flattened [B*n, L] states."""

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
        out = {"start_logits": start_logits.squeeze(-1).contiguous(), "end_logits": end_logits.squeeze(-1).contiguous()}
        if start_positions is None or end_positions is None:
            return out
        ignored = out["start_logits"].size(1)
        start = start_positions.view(-1).clamp(0, ignored)
        end = end_positions.view(-1).clamp(0, ignored)
        out["loss"] = (
            F.cross_entropy(out["start_logits"], start, ignore_index=ignored)
            + F.cross_entropy(out["end_logits"], end, ignore_index=ignored)
        ) / 2
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

    tied_weight = "decoder.weight"  # the parameter MultiTaskModel ties to the input embeddings

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


class DualEncoderHead(nn.Module):
    """XTREME-R's dual encoder (``BertForRetrieval``): the L2-normalised pooled <s> state embeds a query or a
    candidate; queries score the candidates of their batch (in-batch negatives) through a learned scale."""

    def __init__(self, hidden_size: int, initial_scale: float = 100.0):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)  # the pooler BERT/XLM-R put on <s>
        self.logit_scale = nn.Parameter(torch.full((1,), initial_scale))

    def embed(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.tanh(self.dense(hidden_states[:, 0])), p=2, dim=-1)

    def in_batch_loss(self, queries: torch.Tensor, candidates: torch.Tensor) -> dict:
        logits = queries @ candidates.T * self.logit_scale
        targets = torch.arange(len(queries), device=logits.device)
        return {"loss": F.cross_entropy(logits, targets), "logits": logits}

    def forward(self, hidden_states, **_):
        return {"logits": self.embed(hidden_states)}
