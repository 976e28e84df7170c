"""Task samplers (formulas, empirical frequencies, errors) and the lockstep batch sampler."""

from __future__ import annotations

import numpy as np
import pytest
from accelerate.data_loader import BatchSamplerShard, SkipBatchSampler
from datasets import Dataset

from hf_itt.errors import ConfigError, DataError
from hf_itt.training.sampling import (
    LockstepBatchSampler,
    MultiTaskDataset,
    make_sampler,
)

SIZES = {"mnli": 900, "squad": 300, "copa": 40}
# chi-square critical value at p = 0.001 for 2 degrees of freedom (3 tasks)
CHI2_CRITICAL_DF2 = 13.816


def expected(weights: dict) -> dict:
    total = sum(weights.values())
    return {task: w / total for task, w in weights.items()}


@pytest.mark.parametrize(
    "strategy, options, weights",
    [
        ("uniform", {}, {t: 1 for t in SIZES}),
        ("proportional", {}, SIZES),
        ("temperature", {"temperature": 2.0}, {t: n**0.5 for t, n in SIZES.items()}),
        ("capped", {"cap": 200}, {t: min(n, 200) for t, n in SIZES.items()}),
        ("weights", {"weights": {"mnli": 1, "squad": 2, "copa": 1}}, {"mnli": 1, "squad": 2, "copa": 1}),
    ],
)
def test_probabilities_follow_the_formulas(strategy, options, weights):
    probabilities = make_sampler(strategy, SIZES, **options).probabilities()
    assert probabilities == pytest.approx(expected(weights))


def test_annealed_moves_from_proportional_towards_uniform():
    sampler = make_sampler("annealed", SIZES, anneal_alpha_end=0.2)
    epochs = 5
    assert sampler.probabilities(0, epochs) == pytest.approx(expected(SIZES))
    assert sampler.probabilities(4, epochs) == pytest.approx(expected({t: n**0.2 for t, n in SIZES.items()}))
    assert sampler.alpha(2, epochs) == pytest.approx(1 - 0.8 * 2 / 4)  # Stickland & Murray with e = 3 of E = 5
    smallest = [sampler.probabilities(e, epochs)["copa"] for e in range(epochs)]
    assert smallest == sorted(smallest) and smallest[0] < smallest[-1]
    assert sampler.probabilities(0, 1) == pytest.approx(expected(SIZES))  # one epoch: no annealing


@pytest.mark.parametrize(
    "strategy, options",
    [
        ("uniform", {}),
        ("proportional", {}),
        ("temperature", {"temperature": 3.0}),
        ("capped", {"cap": 100}),
        ("weights", {"weights": {"mnli": 3, "squad": 1, "copa": 1}}),
    ],
)
def test_empirical_task_frequencies_match_probabilities(strategy, options):
    sampler = make_sampler(strategy, SIZES, **options)
    lockstep = LockstepBatchSampler(sampler, batch_size=2, seed=3, steps_per_epoch=6000)
    counts = np.bincount(lockstep.schedule(0), minlength=3)
    probs = np.array(list(sampler.probabilities().values()))
    chi2 = (((counts - probs * counts.sum()) ** 2) / (probs * counts.sum())).sum()
    assert chi2 < CHI2_CRITICAL_DF2, (counts, probs)


@pytest.mark.parametrize(
    "strategy, options, error, message",
    [
        ("proportionl", {}, ConfigError, "did you mean 'proportional'"),
        ("weights", {"weights": {"mnli": 1, "squad": 0, "copa": 1}}, ConfigError, "must be > 0"),
        ("weights", {"weights": {"mnli": 1, "squad": -2, "copa": 1}}, ConfigError, "must be > 0"),
        ("weights", {"weights": {"mnli": 1}}, ConfigError, "one weight per task"),
        ("capped", {}, ConfigError, "needs cap"),
        ("temperature", {"temperature": 0}, ConfigError, "temperature must be > 0"),
        ("uniform", {"temprature": 2}, ConfigError, "unknown sampling option"),
    ],
)
def test_bad_sampling_configs_raise_before_training(strategy, options, error, message):
    with pytest.raises(error, match=message):
        make_sampler(strategy, SIZES, **options)


def test_empty_tasks_raise_data_error():
    with pytest.raises(DataError, match="'copa' has 0 training examples"):
        make_sampler("uniform", {"mnli": 10, "copa": 0})
    with pytest.raises(ConfigError, match="at least one task"):
        make_sampler("uniform", {})


def test_unused_options_of_a_whole_sampling_config_are_ignored():
    sampler = make_sampler("uniform", SIZES, temperature=2.0, cap=None, anneal_alpha_end=0.2)
    assert sampler.probabilities() == pytest.approx(expected({t: 1 for t in SIZES}))


def shard(batch_sampler, rank: int, world_size: int, skip: int = 0):
    sharded = BatchSamplerShard(batch_sampler, num_processes=world_size, process_index=rank)
    return list(SkipBatchSampler(sharded, skip) if skip else sharded)


def task_of(index: int, offsets: list[int]) -> int:
    return int(np.searchsorted(offsets, index, side="right") - 1)


def test_two_ranks_get_the_same_task_and_disjoint_examples_at_every_step():
    sampler = make_sampler("proportional", SIZES)
    lockstep = LockstepBatchSampler(sampler, batch_size=4, world_size=2, seed=0, steps_per_epoch=40)
    rank0, rank1 = shard(lockstep, 0, 2), shard(lockstep, 1, 2)
    assert len(rank0) == len(rank1) == 40 == len(BatchSamplerShard(lockstep, 2, 0))
    schedule = lockstep.schedule(0)
    for step, (a, b) in enumerate(zip(rank0, rank1)):
        tasks = {task_of(i, lockstep.offsets) for i in a + b}
        assert tasks == {schedule[step]}, step  # one task per step on both ranks
        assert len(a) == len(b) == 4 and not set(a) & set(b)
    assert len(set(schedule.tolist())) == 3


def test_resume_by_skipping_batches_replays_the_same_suffix():
    lockstep = LockstepBatchSampler(make_sampler("uniform", SIZES), batch_size=3, world_size=2, steps_per_epoch=10)
    lockstep.set_epoch(1)
    full = shard(lockstep, 1, 2)
    fresh = LockstepBatchSampler(make_sampler("uniform", SIZES), batch_size=3, world_size=2, steps_per_epoch=10)
    fresh.set_epoch(1)
    assert shard(fresh, 1, 2, skip=4) == full[4:]


def test_schedule_is_a_pure_function_of_seed_epoch_and_step():
    def make(seed):
        return LockstepBatchSampler(make_sampler("uniform", SIZES), 2, seed=seed, steps_per_epoch=50)

    a, b = make(7), make(7)
    assert np.array_equal(a.schedule(2), b.schedule(2))
    assert list(a) == list(a)  # iterating twice gives the same epoch
    assert not np.array_equal(a.schedule(0), a.schedule(1))
    assert not np.array_equal(a.schedule(0), make(8).schedule(0))


def test_one_optimizer_step_is_one_task_over_world_size_times_accumulation_batches():
    """G=2, 2 ranks, B=3: an update = 2 micro-steps x 2 ranks x 3 examples, all of one task."""
    lockstep = LockstepBatchSampler(
        make_sampler("uniform", SIZES), batch_size=3, world_size=2, accumulation_steps=2, steps_per_epoch=40
    )
    batches = list(lockstep)
    per_update = 2 * 2
    for start in range(0, len(batches), per_update):
        update = [i for batch in batches[start : start + per_update] for i in batch]
        assert len(update) == 12 and len({task_of(i, lockstep.offsets) for i in update}) == 1
    mixed = LockstepBatchSampler(
        make_sampler("uniform", SIZES), 3, 2, accumulation_steps=2, steps_per_epoch=40, same_task_per_update=False
    ).schedule(0)
    assert any(mixed[i] != mixed[i + 1] for i in range(0, 40, 2))  # updates may mix tasks
    with pytest.raises(ConfigError, match="multiple of gradient_accumulation_steps"):
        LockstepBatchSampler(make_sampler("uniform", SIZES), 3, accumulation_steps=4, steps_per_epoch=6)


def test_default_epoch_is_about_one_pass_over_all_examples():
    lockstep = LockstepBatchSampler(
        make_sampler("proportional", SIZES), batch_size=10, world_size=2, accumulation_steps=3
    )
    assert lockstep.steps_per_epoch == 63  # ceil(1240 / 60) = 21 updates of 3 micro-steps
    epoch = [i for batch in lockstep for i in batch]
    per_task = np.bincount([task_of(i, lockstep.offsets) for i in epoch], minlength=3)
    mnli = per_task[0]
    assert len(set(i for i in epoch if task_of(i, lockstep.offsets) == 0)) == min(mnli, 900)  # no repeats in a pass


def test_length_grouping_reduces_padding():
    rng = np.random.default_rng(0)
    lengths = {
        "mnli": rng.integers(5, 200, 900).tolist(),
        "squad": rng.integers(5, 200, 300).tolist(),
        "copa": rng.integers(5, 200, 40).tolist(),
    }
    flat = np.concatenate([lengths[t] for t in SIZES])

    def padded_tokens(grouped: bool) -> int:
        lockstep = LockstepBatchSampler(
            make_sampler("proportional", SIZES),
            batch_size=8,
            seed=1,
            lengths=lengths if grouped else None,
            length_chunk=10,
        )
        return sum(int(flat[batch].max()) * len(batch) for batch in lockstep)

    assert padded_tokens(True) < 0.7 * padded_tokens(False)


def test_multitask_dataset_reads_batches_by_column_and_tags_items():
    a = Dataset.from_dict({"input_ids": [[0, 5, 2], [0, 6, 7, 2]], "labels": [1, 0]})
    b = Dataset.from_dict({"input_ids": [[0, 9, 2]] * 3, "start_positions": [1, 1, 1], "end_positions": [1, 1, 1]})
    dataset = MultiTaskDataset({"nli": a, "squad": b}, {"nli": 0, "squad": 2})
    assert len(dataset) == 5
    assert dataset[1] == {"input_ids": [0, 6, 7, 2], "labels": 0, "task_ids": 0, "example_index": 1}
    assert dataset.__getitems__([3, 2]) == [dataset[3], dataset[2]]
    assert dataset[4]["task_ids"] == 2
