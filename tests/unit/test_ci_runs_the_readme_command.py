"""CI (.ci/run) must call the very test command that README.md gives under "Run the tests"."""
import re

from support import REPO


def readme_test_command() -> str:
    text = (REPO / "README.md").read_text()
    after = text[text.index("Run the tests"):]
    return re.search(r"```bash\n(.+?)\n```", after, re.DOTALL).group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = readme_test_command()
    assert "pytest" in command
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert command in ci, f".ci/run does not run README's test command: {command}"
