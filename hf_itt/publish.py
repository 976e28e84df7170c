"""`hf-itt publish RUN_DIR`: publish the finished-but-unpublished stages of a run.

A stage whose publishing failed (no network, the Hub down, a missing token, HF_HUB_OFFLINE=1 on a
compute node) stays on disk marked "finished" with the error in its manifest; this command
publishes every such ITT stage later, parents first, to the repo its manifest planned:

    hf-itt publish runs/squad-then-mnli/seed1 --publisher hub
    hf-itt publish runs/demo/seed1 --publisher local --local-root hub_local
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hf_itt.errors import ConfigError, HubError
from hf_itt.hub.manifest import MANIFEST_NAME, redact_text
from hf_itt.pipeline.locks import run_lock

STAGE_MANIFESTS = f"stages/*/checkpoint/{MANIFEST_NAME}"  # ITT stages, as the runner publishes them


def parser() -> argparse.ArgumentParser:
    from hf_itt.hub.publishers import DEFAULT_REPO_TEMPLATE  # defers huggingface_hub

    parser = argparse.ArgumentParser(prog="hf-itt publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="the run folder (output_dir of the experiment)")
    parser.add_argument("--publisher", choices=("local", "hub"), default="hub", help="where to publish (default: hub)")
    parser.add_argument("--local-root", default="hub_local", help="root folder of the local publisher")
    parser.add_argument("--namespace", help="Hub user/organisation for stages whose manifest planned no repo")
    parser.add_argument(
        "--repo-template",
        default=DEFAULT_REPO_TEMPLATE,
        help="repo id template for stages whose manifest planned no repo",
    )
    parser.add_argument("--revision", default="main", help="branch to publish to when the manifest names none")
    parser.add_argument("--public", action="store_true", help="create new Hub repos as public (default: private)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from hf_itt.hub.publishers import (  # defers huggingface_hub
        make_publisher,
        publish_pending,
    )

    args = parser().parse_args(argv)
    if not args.run_dir.is_dir():
        raise ConfigError(f"run folder {args.run_dir} not found; pass the output_dir of the experiment")
    publisher = make_publisher(args.publisher, local_root=args.local_root, private=not args.public)
    with run_lock(args.run_dir, fix="a run still going publishes its own stages; publish once it has finished"):
        outcomes = publish_pending(
            args.run_dir,
            publisher,
            namespace=args.namespace,
            repo_template=args.repo_template,
            revision=args.revision,
            pattern=STAGE_MANIFESTS,
        )
    if not outcomes:
        print(f"nothing to publish in {args.run_dir}: every finished stage is already published")
        return 0
    for outcome in outcomes:
        if outcome.ok:
            print(f"published {outcome.stage_dir} -> {outcome.ref.reference} ({outcome.ref.url})")
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        raise HubError(
            f"{len(failed)} of {len(outcomes)} stage(s) could not be published (they stay on disk, "
            "marked finished; rerun this command once fixed): "
            + "; ".join(f"{o.stage_dir}: {redact_text(str(o.error))}" for o in failed)
        )
    return 0


if __name__ == "__main__":
    import sys

    from hf_itt.cli import guarded

    sys.exit(guarded(main, sys.argv[1:]))
