"""The user guide stays true: generated pages up to date, links resolve, recipe examples run.

Recipe blocks are marked in docs/recipes.md by an HTML comment right before a fenced block:

    <!-- test: file PATH -->          write the block to PATH (inside a temporary folder)
    <!-- test: task-file PATH -->     write it, register it as a task file, check every entry
    <!-- test: experiment PATH -->    write it, load and validate it with hf_itt.config.loading.load_experiment
    <!-- test: python -->             execute it

Blocks run in page order in one temporary working folder (later blocks read files earlier ones
wrote), each with a fresh registry of the built-in tasks, as if run in a new process.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from pathlib import Path

import pytest
import yaml

from scripts import docgen

DOCS = docgen.DOCS_DIR
REPO_ROOT = docgen.REPO_ROOT
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
TEST_BLOCK = re.compile(
    r"<!-- test: (?P<kind>[\w-]+)(?: (?P<path>\S+))? -->\s*\n```[^\n]*\n(?P<body>.*?)^```", re.S | re.M
)
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(?P<body>.*?)^```", re.S | re.M)


# ------------------------------------------------------------------------------------------ generated pages


def test_generated_pages_are_up_to_date():
    stale = docgen.stale_files()
    assert not stale, f"{stale} out of date: run `python scripts/docgen.py` and commit the result"


def test_check_mode_fails_on_stale_pages_and_passes_after_writing(tmp_path, capsys):
    assert docgen.main(["--check", "--docs-dir", str(tmp_path)]) == 1
    assert "reference.md" in capsys.readouterr().err
    docgen.write_all(tmp_path)
    (tmp_path / "tasks.md").write_text("edited by hand\n", encoding="utf-8")
    assert docgen.main(["--check", "--docs-dir", str(tmp_path)]) == 1
    docgen.write_all(tmp_path)
    assert docgen.main(["--check", "--docs-dir", str(tmp_path)]) == 0


def yaml_paths(cls, prefix=""):
    """Every YAML path of the experiment schema, walked here independently of docgen."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        path = prefix + f.metadata.get("yaml", f.name)
        yield path, f
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from yaml_paths(hint, path + ".")
        elif typing.get_origin(hint) is list and dataclasses.is_dataclass(typing.get_args(hint)[0]):
            yield from yaml_paths(typing.get_args(hint)[0], path + "[].")


def test_reference_documents_every_field_with_its_help_and_default():
    from hf_itt.config.experiment import ExperimentConfig

    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines() if line.startswith("| `")}
    paths = dict(yaml_paths(ExperimentConfig))
    assert {"stages[].tasks[].data_files", "stages[].from", "hub.repo_template"} <= set(paths)
    for path, f in paths.items():
        assert path in rows, f"{path} missing from docs/reference.md"
        assert f.metadata.get("help", "").replace("|", "\\|") in rows[path], f"help of {path} not shown"
    assert "| `seed` | int | `42` |" in text and "| `evaluation.splits` | list[str] | `[validation]` |" in text
    assert "`stages.0.training.learning_rate=2e-5`" in text  # override syntax


def test_reference_shows_every_preset_value_with_its_source():
    from hf_itt.config.presets import all_presets

    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    for name, preset in all_presets().items():
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        assert "max_length" not in preset  # a task keeps its own length (presets.yaml says why)
        values = {**preset["training"], **{k: v for k, v in preset.items() if k not in ("training", "description")}}
        assert "early_stopping_patience" in values, name
        for key, value in values.items():
            row = next((line for line in section.splitlines() if line.startswith(f"| `{key}` |")), None)
            assert row is not None, f"{name}.{key} missing"
            assert f"`{docgen.format_value(value)}`" in row and re.search(r"\[(jiant|xtreme|ours)\]", row), row


def test_task_catalogue_lists_every_builtin_task():
    text = (DOCS / "tasks.md").read_text(encoding="utf-8")
    registry = docgen.builtin_registry()
    assert len(registry.names()) >= 29
    for name in registry.names():
        spec = registry.get(name)
        row = next(line for line in text.splitlines() if line.startswith(f"| [`{name}`]"))
        assert f"{len(spec.languages)}: {' '.join(spec.languages)}" in row and (spec.metric or "") in row, row
        if spec.train_task:
            assert f"`{spec.train_task}`" in row
        assert f"\n### {name}\n" in text
    assert "facebook/xnli" in text and "(XTREME-R adds lt pl uk wo ro)" in text


def test_every_benchmark_task_documents_its_official_scoring(tmp_path):
    text = (DOCS / "tasks.md").read_text(encoding="utf-8")
    from scripts.official_scoring import official_scoring

    notes = official_scoring()
    registry = docgen.builtin_registry()
    benchmark_tasks = {name for name in registry.names() if registry.get(name).benchmarks}
    assert set(notes) - {"_benchmark"} == benchmark_tasks  # no task forgotten, no note for a task that is not
    for name in benchmark_tasks:
        section = text.split(f"\n### {name}\n")[1].split("\n### ")[0]
        assert "**Official scoring**" in section and "- official scorer: " in section and "- hf_itt: " in section
    bucc = text.split("\n### bucc2018\n")[1].split("\n### ")[0]
    assert "bucc2018/de-en/de-en.sample.gold" in bucc and "bucc_allow_gold_only" in bucc and "test-oracle" in bucc
    assert "70.21746048354693" in text and "## Official scoring" in text
    broken = tmp_path / "notes.yaml"
    broken.write_text("xnli: {official: accuracy}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="entry 'xnli' needs 'official' and 'hf_itt'"):
        official_scoring(broken)


# ------------------------------------------------------------------------------------------ links


def strip_code(text: str) -> str:
    text = re.sub(r"``[^\n]*?``", "", FENCE.sub("", text))  # double-backtick spans hold single backticks
    return re.sub(r"`[^`\n]*`", "", text)


def slugify(heading: str) -> str:
    """Python-Markdown's toc slug (what mkdocs uses; GitHub agrees for these headings)."""
    text = re.sub(r"[`*]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slugify(match) for match in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_index_links_every_page_and_mkdocs_nav_matches():
    index = strip_code((DOCS / "index.md").read_text(encoding="utf-8"))
    linked = {target.split("#")[0] for target in LINK.findall(index)}
    others = {page.name for page in PAGES} - {"index.md"}
    assert others <= linked, f"pages not linked from docs/index.md: {sorted(others - linked)}"
    missing = sorted(name for name in linked if not (DOCS / name).is_file())
    assert not missing, f"docs/index.md links pages that do not exist: {missing}"
    nav = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    assert {page for entry in nav for page in entry.values()} == linked | {"index.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page):
    for target in LINK.findall(strip_code(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path) if path else page
        assert destination.is_file(), f"{page.name}: link {target!r} points to a missing file"
        if anchor and destination.suffix == ".md":
            assert anchor in anchors(destination), f"{page.name}: no heading #{anchor} in {destination.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_raw_html_tags_in_prose(page):
    """`<lang>` outside code would vanish as an unknown HTML tag when rendered."""
    for line in strip_code(page.read_text(encoding="utf-8")).splitlines():
        tag = re.search(r"<(?!!--|br>)[A-Za-z/]", line)
        assert tag is None, f"{page.name}: raw '<' outside code in: {line.strip()[:100]}"


def test_mkdocs_builds_offline_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is optional (pip install mkdocs) and not installed here")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    build(load_config(str(REPO_ROOT / "mkdocs.yml"), site_dir=str(tmp_path / "site"), strict=True))


# ------------------------------------------------------------------------------------------ commands


def command_lines(text: str):
    for block in SHELL_BLOCK.finditer(text):
        yield from block["body"].replace("\\\n", " ").splitlines()


def check_command(tokens: list[str]) -> int:
    """Parse a documented command with the real argument parser; the number of commands checked."""
    from hf_itt import cli, evaluate
    from hf_itt.config.overrides import parse_override
    from hf_itt.report import build as report
    from hf_itt.tasks.registry import get_task

    checked = sum(check_command(shlex.split(token)) for token in tokens if " " in token)
    for position, token in enumerate(tokens):
        rest = tokens[position + 1 :]
        if token.endswith("run_itt.py"):
            args = cli.run_parser().parse_args(rest)
            for override in args.overrides:
                parse_override(override)
            return checked + 1
        if token == "-m" and rest and rest[0] == "hf_itt.evaluate":
            args = evaluate.build_parser().parse_args(rest[1:])
            for task in args.tasks.split(","):
                get_task(task)
            return checked + 1
        if token == "export-submission":
            from hf_itt.report import submission

            submission.parse_args(rest)
            return checked + 1
        if token == "-m" and rest and rest[0] == "hf_itt.report":
            report.parse_args(rest[1:])
            return checked + 1
        if token == "-m" and rest and rest[0] == "hf_itt.memory":
            from hf_itt import memory

            memory.main(rest[1:])  # offline arithmetic on a known model: cheap to run for real
            return checked + 1
    return checked


def test_documented_commands_parse():
    checked = 0
    for page in PAGES:
        for line in command_lines(page.read_text(encoding="utf-8")):
            try:
                checked += check_command(shlex.split(line, comments=True))
            except SystemExit:
                pytest.fail(f"{page.name}: the command does not parse: {line.strip()}")
    assert checked >= 10  # run_itt.py, hf_itt.evaluate and hf_itt.report.build lines of several pages


# ------------------------------------------------------------------------------------------ recipes


def recipe_blocks(page: str = "recipes.md"):
    text = (DOCS / page).read_text(encoding="utf-8")
    return [
        (text[: match.start()].count("\n") + 1, match["kind"], match["path"], match["body"])
        for match in TEST_BLOCK.finditer(text)
    ]


def run_block(kind: str, path: str | None, body: str, where: str) -> None:
    from hf_itt.config.loading import load_experiment
    from hf_itt.tasks.registry import get_task, register_task_file

    if kind in ("file", "task-file", "experiment"):
        assert path, f"{where}: `test: {kind}` needs a path"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(body, encoding="utf-8")
    if kind == "task-file":
        names = register_task_file(path)
        assert names, f"{where}: no task registered"
        for name in names:
            get_task(name)
    elif kind == "experiment":
        load_experiment(path)
    elif kind == "python":
        exec(compile(body, where, "exec"), {"__name__": "__docs__"})  # noqa: S102 - our own documentation
    elif kind != "file":
        raise AssertionError(f"{where}: unknown test block kind {kind!r}")


def test_recipe_blocks_run(tmp_path, monkeypatch):
    import torch

    from hf_itt.tasks import registry

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    blocks = recipe_blocks()
    assert {kind for _, kind, _, _ in blocks} == {"file", "task-file", "experiment", "python"}
    assert len(blocks) >= 15
    for line, kind, path, body in blocks:
        monkeypatch.setattr(registry, "_default", None)  # built-in tasks only, as in a new process
        run_block(kind, path, body, f"docs/recipes.md line {line} ({kind})")
    assert (tmp_path / "out" / "encoder" / "config.json").is_file()


def test_your_own_script_page_runs_as_one_script(tmp_path, monkeypatch):
    """docs/your_script.md: train -> evaluate -> predict -> save -> reload with the plain Trainer calls."""
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    blocks = recipe_blocks("your_script.md")
    assert [kind for _, kind, _, _ in blocks] == ["python"] * len(blocks) and len(blocks) >= 5
    namespace = {"__name__": "__docs__"}  # one script: later blocks use what earlier ones defined
    for line, _, _, body in blocks:
        exec(compile(body, f"docs/your_script.md line {line}", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "out" / "final" / "config.json").is_file()
