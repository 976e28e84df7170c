from transformers import AutoModel, AutoTokenizer


def test_tiny_checkpoint_loads_with_auto_classes(tiny_checkpoint):
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = AutoModel.from_pretrained(tiny_checkpoint)
    assert tokenizer.is_fast
    assert model.config.model_type == "xlm-roberta"
    assert model.config.vocab_size == len(tokenizer)
    encoded = tokenizer("Paris est la capitale.", "Where?", return_offsets_mapping=True)
    assert encoded["input_ids"][0] == tokenizer.bos_token_id
    assert encoded.sequence_ids()[-2] == 1
