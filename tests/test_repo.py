"""The repository's contract with CI: .ci/run runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(ci_lines) == 1, "expected one install-and-test line in .ci/run"
    assert ci_lines[0] in (ROOT / "README.md").read_text(), "README's test command and .ci/run differ"
    assert "pytest" in ci_lines[0]
