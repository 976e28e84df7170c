"""Masked language modelling: the MLM ablation of the reference study (ITT only, no zero-shot score).

rows       {"text": str}
features   input_ids, attention_mask, special_tokens_mask (texts concatenated and cut into chunks of
           max_length, run_mlm's group_texts)
batches    DataCollatorForLanguageModeling draws the masks; a training batch's masks are seeded by
           (seed, the batch's example indices), so a resumed run masks exactly the tokens the
           uninterrupted run masked (Trainer restores its RNG only after fetching the first batches);
           batches without indices (evaluation) draw from torch's global RNG
head       dense, gelu, layer norm, decoder (weight tied to the input embeddings) + bias
"""

from __future__ import annotations

import numpy as np

from hf_itt.task_types.base import ENCODER_INPUTS, TaskType
from hf_itt.task_types.tagging_features import special_token_wrappers


class SeededMaskCollator:
    """DataCollatorForLanguageModeling whose masks are seeded by the batch's example indices."""

    def __init__(self, tokenizer, mlm_probability: float, pad_to_multiple_of: int | None, seed: int):
        from transformers import DataCollatorForLanguageModeling

        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=mlm_probability, pad_to_multiple_of=pad_to_multiple_of
        )
        self.seed = seed

    def __call__(self, features: list[dict]) -> dict:
        self.collator.generator = self._mask_generator([feature.get("example_index") for feature in features])
        return self.collator([{key: f[key] for key in MaskedLM.model_inputs if key in f} for f in features])

    def _mask_generator(self, indices: list):
        if any(index is None for index in indices):
            return None
        import torch  # the collator runs where torch is loaded already; the type registry must not need it

        state = np.random.SeedSequence([int(self.seed), *map(int, indices)]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state) >> 1)


class MaskedLM(TaskType):
    name = "mlm"
    hub_task = "fill-mask"
    columns = ("text",)
    required_columns = ("text",)
    model_inputs = ENCODER_INPUTS + ("special_tokens_mask",)
    text_file_format = "lines"

    def convert_row(self, reader, row, number):
        text = reader.text(row, "text", number)
        return {"text": text} if text.strip() else None

    def feature_columns(self, train: bool) -> dict:
        from datasets import List, Value

        return {**super().feature_columns(train), "special_tokens_mask": List(Value("int8"))}

    def tokenize(self, batch, *, tokenizer, max_length, **_):
        """Concatenate the batch's texts and cut them into chunks of ``max_length``; the last, shorter
        chunk is kept (dynamic padding handles it)."""
        prefix, suffix = special_token_wrappers(tokenizer)
        body_length = max_length - len(prefix) - len(suffix)
        encoded = tokenizer(batch["text"], add_special_tokens=False, verbose=False)
        stream = [token for ids in encoded["input_ids"] for token in ids]
        features = {"input_ids": [], "attention_mask": [], "special_tokens_mask": []}
        for start in range(0, len(stream), body_length):
            body = stream[start : start + body_length]
            features["input_ids"].append(prefix + body + suffix)
            features["attention_mask"].append([1] * (len(prefix) + len(body) + len(suffix)))
            features["special_tokens_mask"].append([1] * len(prefix) + [0] * len(body) + [1] * len(suffix))
        return features

    def collator(self, tokenizer, *, pad_to_multiple_of=None, mlm_probability: float = 0.15, seed: int = 0, **options):
        return SeededMaskCollator(tokenizer, mlm_probability, pad_to_multiple_of, seed)

    def prepare_features(self, features):
        return features  # the collator reads example_index for its mask seed, then keeps the model's inputs

    def build_head(self, num_labels, encoder_config):
        from hf_itt.task_types.heads import MaskedLMHead  # defers torch

        return MaskedLMHead(
            encoder_config.hidden_size, encoder_config.vocab_size, getattr(encoder_config, "layer_norm_eps", 1e-5)
        )
