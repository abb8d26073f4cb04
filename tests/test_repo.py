"""The repository's contract with CI: .ci/run runs exactly the README's test command; documents point at files."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


TEST_LINE = "pip install -q -r requirements-dev.txt"  # how the install-and-test line starts


def test_ci_runs_the_readme_test_command():
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith(TEST_LINE)]
    assert len(ci_lines) == 1, "expected one install-and-test line in .ci/run"
    readme = (ROOT / "README.md").read_text().splitlines()
    assert ci_lines[0] in readme, "README's test command and .ci/run differ"
    assert ci_lines[0].endswith("python -m pytest -q tests")
    assert 'python -m pytest -q -m "not slow" tests' in readme, "the README states the fast test command too"


DOCUMENT_REFERENCE = re.compile(r"(?<![\w/.-])((?:\.\./)*(?:[\w.-]+/)*[\w.-]+\.md)\b")


def repository_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in listed if name.endswith((".py", ".md", ".yaml", ".sh", ".txt", ".ini", ".json"))
            and (ROOT / name).is_file()]


def test_every_document_reference_points_at_a_file_of_the_repository():
    broken = []
    for path in repository_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for line_number, line in enumerate(text.splitlines(), 1):
            for reference in DOCUMENT_REFERENCE.findall(line):
                if not ((ROOT / reference).is_file() or (path.parent / reference).is_file()):
                    broken.append(f"{path.relative_to(ROOT)}:{line_number}: {reference}")
    assert not broken, "references to documents the repository does not hold:\n" + "\n".join(broken)


def test_the_reference_check_finds_a_missing_document():
    missing, relative = "SPEC" + ".md", "../" + "elsewhere/OTHER" + ".md"  # split so this file cites neither
    assert DOCUMENT_REFERENCE.findall(f"see {missing} section 5 and {relative}, docs/METHOD.md") == [
        missing, relative, "docs/METHOD.md"]


def repository_paths(text: str) -> list[str]:
    """Every path into this repository written in backticks: a word whose first component is a top-level entry of
    the repository, braces expanded ({a,b}), `<placeholder>` and `*` kept as globs, a `:name` suffix dropped."""
    tops = {name.split("/")[0] for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                                                            text=True, check=True).stdout.split()}
    paths = []
    for span in re.findall(r"`([^`\n]+)`", text):
        for word in span.split():
            word = re.sub(r"<[^>]*>", "*", word.strip("(),;")).split(":")[0]
            if word.split("/")[0] not in tops or not ("/" in word or "." in word):
                continue
            expanded = [word]
            while any("{" in item for item in expanded):
                item = next(item for item in expanded if "{" in item)
                head, choices, tail = re.match(r"(.*?)\{([^}]*)\}(.*)", item).groups()
                expanded.remove(item)
                expanded += [head + choice + tail for choice in choices.split(",")]
            paths += expanded
    return paths


def test_every_repository_path_in_backticks_in_the_docs_exists():
    missing = [f"{document.relative_to(ROOT)}: {path}" for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
               for path in repository_paths(document.read_text(encoding="utf-8"))
               if not (list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists())]
    assert not missing, "paths in backticks that the repository does not hold:\n" + "\n".join(missing)


def test_the_path_check_reads_braces_placeholders_and_names():
    assert repository_paths("see `configs/{ssl,distill}/tiny_mini.yaml` and `models/vit.py:PatchEmbed3d`, "
                            "`configs/<stage>/*.yaml`, not `runs/x` nor `eztorch/models/heads/mlp.py`") == [
        "configs/ssl/tiny_mini.yaml", "configs/distill/tiny_mini.yaml", "models/vit.py", "configs/*/*.yaml"]


LIBRARY = ("utils", "configs", "data", "models", "evaluation", "spot")


def package_imports() -> dict[str, set[str]]:
    """{top-level package or script: the others it imports}, from every import statement (top-level or local)."""
    names = {path.stem if path.parent == ROOT else path.relative_to(ROOT).parts[0]
             for path in ROOT.glob("*.py")} | set(LIBRARY) | {"tests", "benchmarks"}
    graph = {name: set() for name in names}
    for path in [*ROOT.glob("*.py"), *[p for name in (*LIBRARY, "tests", "benchmarks") for p in (ROOT / name).rglob("*.py")]]:
        node = path.stem if path.parent == ROOT else path.relative_to(ROOT).parts[0]
        for statement in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [alias.name for alias in statement.names] if isinstance(statement, ast.Import) else \
                [statement.module] if isinstance(statement, ast.ImportFrom) and statement.module and \
                not statement.level else []
            graph[node] |= {module.split(".")[0] for module in modules} & (names - {node})
    return graph


def test_the_import_graph_has_no_circle_and_at_most_four_levels():
    """A package's level is 1 + the highest level of what it imports. The library (utils; configs and data; models,
    evaluation and spot), the entry points above it, and the tests, which run the entry points as a user does and
    never import them. The benchmarks may also use the tests' generated label sets."""
    graph = package_imports()
    levels: dict[str, int] = {}

    def level(name: str, path: tuple[str, ...] = ()) -> int:
        assert name not in path, f"import circle: {' -> '.join(path + (name,))}"
        if name not in levels:
            levels[name] = 1 + max((level(other, path + (name,)) for other in graph[name]), default=0)
        return levels[name]

    for name in graph:
        level(name)
    assert max(level for name, level in levels.items() if name != "benchmarks") <= 4, levels
    assert {name for name, level in levels.items() if level == 1} == {"utils"}, levels


def test_importing_the_config_schemas_does_not_import_torch():
    probe = "import sys, configs.schema, configs.inference; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_the_paper_schedule_is_computed_from_the_measured_figures():
    """docs/PERFORMANCE.md's schedule table is benchmarks/paper_schedule.py's output on benchmarks/measured/: every
    rate in it is a measured figure of those files (or, for stage 1's step, derived from one), nothing typed."""
    completed = subprocess.run([sys.executable, "benchmarks/paper_schedule.py"], cwd=ROOT, capture_output=True,
                               text=True, check=True)
    schedule = json.loads(completed.stdout.split("BENCH schedule ", 1)[1])
    lines = [line for path in sorted((ROOT / "benchmarks" / "measured").glob("*.txt"))
             for line in path.read_text().splitlines()]
    data = json.loads(next(line for line in lines if line.startswith("BENCH data "))[len("BENCH data "):])
    model = json.loads(next(line for line in lines if line.startswith("BENCH model "))[len("BENCH model "):])
    compiled = {row["model"]: row["windows_per_s"] for row in model["rows"] if row["compile"]}
    for pipeline, name in (("ViViT-T", "vivit_tiny"), ("ViSwin-T", "viswin_tiny")):
        rows = {row["stage"]: row for row in schedule[pipeline]}
        assert list(rows) == ["ssl", "distill", "spotting a", "spotting b"]
        assert rows["ssl"]["epochs"] == 100 and rows["spotting b"]["samples_per_epoch"] == 300 * 50
        assert rows["ssl"]["loader_per_core"] == data["jpeg_encoded_clips"]["clips_per_s"]
        assert rows["spotting b"]["loader_per_core"] == data["store224_yuv420_windows"]["windows_per_s"]
        assert rows["spotting b"]["model_per_s"] == compiled[name]
        for row in rows.values():
            assert row["hours"]["1"] == pytest.approx(8 * row["hours"]["8"])


def test_the_command_line_stays_thin_and_no_function_takes_more_than_seven_parameters():
    """evaluate.py hands its checked options to the packages (at most 300 lines, every import at the top), and no
    library or script function takes more than 7 parameters (self aside): wider ones became small typed values.
    Both grew back once, with the dataset work."""
    evaluate = (ROOT / "evaluate.py").read_text(encoding="utf-8")
    assert len(evaluate.splitlines()) <= 300
    local_imports = [node.lineno for function in ast.walk(ast.parse(evaluate)) if isinstance(function, ast.FunctionDef)
                     for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not local_imports, f"evaluate.py imports inside functions at lines {local_imports}"
    wide = []
    for path in [*ROOT.glob("*.py"), *[p for name in LIBRARY for p in (ROOT / name).rglob("*.py")]]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
                count = len(names) - (names[:1] in (["self"], ["cls"])) + bool(node.args.vararg) + bool(node.args.kwarg)
                if count > 7:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count})")
    assert not wide, wide
