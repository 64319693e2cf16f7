"""`factory init NAME`: a working job file, a one-file recipe and its templates to start from."""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from factory.spec import JobError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def init(name: str, directory: str | Path = ".") -> dict:
    """Write NAME.yaml, NAME_recipe.py and templates/NAME/*.jinja into directory; never
    overwrite a file. Returns the paths written."""
    if not _NAME.match(name):
        raise JobError(f"init: name {name!r}: use lowercase letters, digits and _ (starting with a letter)")
    root = Path(directory)
    files = {
        root / f"{name}.yaml": "job.yaml.txt",
        root / f"{name}_recipe.py": "recipe.py.txt",
        root / "templates" / name / "generator.v1.jinja": "generator.jinja.txt",
        root / "templates" / name / "reviewer.v1.jinja": "reviewer.jinja.txt",
        root / "templates" / name / "adjudicator.v1.jinja": "adjudicator.jinja.txt",
    }
    existing = [str(p) for p in files if p.exists()]
    if existing:
        raise FileExistsError(f"init: {existing[0]} exists; choose another name or directory")
    for path, source in files.items():
        text = resources.files("factory.scaffold").joinpath(source).read_text(encoding="utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("__NAME__", name).replace("__CLASS__", _camel(name)), encoding="utf-8")
    return {"job": str(root / f"{name}.yaml"), "files": [str(p) for p in files]}
