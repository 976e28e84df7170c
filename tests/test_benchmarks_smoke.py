"""Every benchmark script runs with --tiny and prints its markdown table.

The scripts run as ``__main__`` inside this process (``runpy``), which spares one torch/transformers
import per script; memory.py launches the real deepspeed launcher with 2 CPU ranks, so it carries the
``deepspeed`` and ``slow`` markers like tests/test_deepspeed_smoke.py (about a minute: two 2-rank
launches; the other scripts together take about 25 s); real_zero2.py does the same with a tiny encoder.
Scripts that tokenize real text need the samples in ../shared/data (the ``shared_data`` fixture skips with
the reason when they are absent); real_model.py needs the real encoder (the ``real_base`` fixture).
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NEEDS_REAL_DATA = {"padding", "evaluation", "preprocessing"}
IN_PROCESS = ["trainer_overhead", "padding", "evaluation", "retrieval", "preprocessing", "scaling"]
TABLE_ROW = re.compile(r"^\| .+ \|$", re.MULTILINE)


def run_script(name: str, monkeypatch, capsys, *extra: str) -> str:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / f"{name}.py"), "--tiny", "--threads", "1", *extra])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(BENCHMARKS / f"{name}.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, f"{name}.py --tiny exited with {exit_info.value.code}:\n{out[-3000:]}"
    return out


def assert_table(out: str, name: str) -> None:
    assert "\n### " in out, f"{name}.py printed no table title:\n{out[-2000:]}"
    assert re.search(r"^\|---(\|---:)+\|$", out, re.MULTILINE), f"{name}.py printed no markdown table:\n{out[-2000:]}"
    rows = [row for row in TABLE_ROW.findall(out) if not row.startswith("|---")]
    assert len(rows) >= 2, f"{name}.py printed a header without data rows:\n{out[-2000:]}"  # header + >= 1 row


@pytest.mark.parametrize("name", IN_PROCESS)
def test_benchmark_runs_tiny_and_prints_its_table(name, monkeypatch, capsys, request):
    if name in NEEDS_REAL_DATA:
        request.getfixturevalue("shared_data")
    assert_table(run_script(name, monkeypatch, capsys), name)


@pytest.mark.deepspeed
@pytest.mark.slow
def test_memory_benchmark_launches_two_ranks_per_config(monkeypatch, capsys):
    pytest.importorskip("deepspeed", reason="the [deepspeed] extra is not installed")
    out = run_script("memory", monkeypatch, capsys)
    assert_table(out, "memory")
    for config in ("no ZeRO (stage 0)", "ZeRO-2 (ds_configs/zero2.json)"):
        assert sum(line.startswith(f"| {config} |") for line in out.splitlines()) == 2, out  # one row per rank


def test_real_model_benchmark_runs_tiny_on_the_real_encoder(monkeypatch, capsys, shared_data, real_base):
    out = run_script("real_model", monkeypatch, capsys, "--base", str(real_base))
    assert_table(out, "real_model")
    assert "MultiTaskTrainer (real_cpu.yaml freeze)" in out and "hf_itt embed_sentences (length-sorted)" in out


@pytest.mark.deepspeed
@pytest.mark.slow
def test_real_zero2_benchmark_matches_one_process(monkeypatch, capsys, shared_data):
    """--tiny swaps the real encoder for a tiny one; the launch, the joint stage and the comparison are the same."""
    pytest.importorskip("deepspeed", reason="the [deepspeed] extra is not installed")
    out = run_script("real_zero2", monkeypatch, capsys)
    assert_table(out, "real_zero2")
    assert out.count("| within |") == 2, out
