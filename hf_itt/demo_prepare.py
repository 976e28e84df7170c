"""`prepare:` hook of run_scripts/demo.yaml: build the synthetic world and the tiny base encoder once.

The base encoder is a 4-layer XLM-R-shaped model with a tokenizer trained on the world's text, warmed
up with multilingual masked-LM (through MultiTaskTrainer's `mlm` head) so that the synthetic languages
share representations, as XLM-R's pretraining makes real languages share them. Both are cached:
a second run finds them and returns at once.
"""

from __future__ import annotations

from pathlib import Path

BASE_SIZE = {"hidden_size": 64, "num_layers": 4, "num_heads": 4}
MLM_STEPS = 300
# Smaller than hf_itt.demo.world's defaults so that the whole demo takes minutes on 2 CPU cores.
WORLD_SIZES = {"mlm_per_language": 1500, "mlm_code_switched": 1500, "mlm_parallel": 1500,
               "mnli_train": 2000, "commonsenseqa_train": 1000, "xnli_validation": 200, "xnli_test": 200}


def prepare(config) -> Path:
    base = Path(config.model.name_or_path)
    world_dir = base.parent / "world"
    if not (world_dir / "world.json").is_file():
        from hf_itt.demo.world import build_world

        print(f"demo: building the synthetic world in {world_dir}", flush=True)
        build_world(world_dir, seed=0, sizes=WORLD_SIZES)
    if not (base / "config.json").is_file():
        print(f"demo: building the tiny base encoder (MLM warm-up, {MLM_STEPS} steps) in {base}", flush=True)
        build_base(base, world_dir / "mlm" / "train.txt")
    return base


def build_base(base: Path, corpus: Path) -> Path:
    """Tokenizer + random encoder, then a multilingual MLM warm-up; exported atomically."""
    import shutil

    import torch
    from transformers import TrainingArguments, XLMRobertaModel, set_seed

    from hf_itt.modeling import MultiTaskModel
    from hf_itt.preprocess import preprocess
    from hf_itt.tasks.loading import load_split
    from hf_itt.tasks.registry import get_task
    from hf_itt.tiny import build_tokenizer, encoder_config
    from hf_itt.trainer import MultiTaskTrainer

    lines = corpus.read_text(encoding="utf-8").splitlines()
    tokenizer = build_tokenizer(lines, vocab_size=2000)
    set_seed(0)
    encoder = XLMRobertaModel(encoder_config(len(tokenizer), **BASE_SIZE, max_positions=130), add_pooling_layer=False)
    partial = base.with_name(base.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    encoder.save_pretrained(partial / "random")
    tokenizer.save_pretrained(partial / "random")
    spec = get_task("mlm")
    rows = load_split(spec, "train", data_files={"train": str(corpus)})
    features = preprocess(rows, spec, tokenizer, split_role="train", max_length=48)
    model = MultiTaskModel.from_encoder(partial / "random", {"mlm": spec})
    args = TrainingArguments(str(partial / "trainer"), max_steps=MLM_STEPS, per_device_train_batch_size=32,
                             learning_rate=1e-3, warmup_steps=0.06, weight_decay=0.01, seed=0, report_to="none",
                             save_strategy="no", logging_steps=100, use_cpu=True, disable_tqdm=False)
    torch.manual_seed(0)
    MultiTaskTrainer(model, args, train_datasets={"mlm": features}, processing_class=tokenizer).train()
    model.export_encoder(partial / "encoder", tokenizer)
    (partial / "encoder").rename(base)
    shutil.rmtree(partial, ignore_errors=True)
    return base
