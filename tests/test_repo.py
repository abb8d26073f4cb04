"""The repository's contract with CI: .ci/run runs exactly the README's test command; documents point at files."""

import re
import subprocess
from pathlib import Path

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
