"""The README starts with the two commands users run, and CI runs the second one exactly as written."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    assert text.split("\n", 2)[2].startswith("```bash\n"), "the README must start with its two commands"
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


def test_the_readme_starts_with_exactly_two_commands():
    main, tests = _commands()
    assert "-e '.[server]'" in main and "monai_app/serve.py sample_case" in main and "surgvlp sample-data" in main
    assert ".venv/bin/python -m pytest" in tests and ".venv-slicer/bin/python -m pytest SlicerSurgVLP/Testing/pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    _, tests = _commands()
    assert tests in (REPO / ".ci" / "run").read_text().splitlines()
