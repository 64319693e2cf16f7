"""Templates that ship with a recipe (issue 24 item 1): a recipe names where its templates
live, a folder next to its file or package data; `name@version` resolves there after the
job's templates_dir and before the built-in prompts/, keeps its namespace, and no stored
spec or lineage row holds the machine's path."""
from __future__ import annotations

import json
import textwrap

import duckdb
import pytest
import yaml

from factory.pipeline import run_job
from factory.spec import JobError, load_job, parse_job

FAKE = {"backend": "fake", "model": "fake"}

RECIPE = '''
from factory.recipes.base import RoleDef, TextRecipe
from roles import Adjudicator, Generator, Reviewer


class Poem(TextRecipe):
    templates = {location!r}
    roles = {{
        "generator": RoleDef(lambda t, r: Generator(t, min_words=1), "poems/generator@1", frozenset({{"topic"}})),
        "reviewer": RoleDef(lambda t, r: Reviewer(t), "poems/reviewer@1", frozenset({{"topic", "text"}})),
        "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "tinystories/adjudicator@1",
                               frozenset({{"topic", "text", "reviews", "story", "verb", "noun", "adjective", "features"}})),
    }}
    decision = {{"accept_mean": 1.0, "max_spread": 10.0, "reject_mean": 0.5}}

    def make_seed(self, index):
        return {{"topic": ["rain", "snow", "wind"][index % 3]}}

    def review_variables(self, seed, sample):
        return {{**seed, "text": sample["text"], "story": sample["text"], "verb": "go", "noun": "x",
                "adjective": "y", "features": []}}
'''
GENERATOR = "{% block user %}Write a poem about {{ topic }}.{% endblock %}"
REVIEWER = "{% block user %}Score this poem about {{ topic }}: {{ text }}{% endblock %}"


def write_templates(folder, generator=GENERATOR):
    (folder / "poems").mkdir(parents=True, exist_ok=True)
    (folder / "poems" / "generator.v1.jinja").write_text(generator)
    (folder / "poems" / "reviewer.v1.jinja").write_text(REVIEWER)


def job(recipe: str, **extra) -> dict:
    return {"name": "poems", "recipe": recipe, "num_samples": 3, "seed": 1, "reviewers": 1,
            "roles": {r: dict(FAKE) for r in ("generator", "reviewer", "adjudicator")},
            "execution": {"executor": "local", "batch_size": 3}, **extra}


def folder_recipe(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "poem.py").write_text(RECIPE.format(location="templates"))
    write_templates(tmp_path / "lib" / "templates")
    (tmp_path / "jobs").mkdir()
    path = tmp_path / "jobs" / "job.yaml"
    path.write_text(yaml.safe_dump(job("../lib/poem.py:Poem")))
    return path


def package_recipe(tmp_path, monkeypatch, name="poem_pkg"):
    # a package is imported once per process: each test gets its own name
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    site = tmp_path / "site"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(RECIPE.format(location=f"{name}:prompts"))
    write_templates(site / name / "prompts")
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[factory.recipes]\n{name} = {name}:Poem\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def stored(db) -> str:
    """Every stored spec and lineage row of the database, as one text."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return json.dumps({t: [list(map(str, r)) for r in con.execute(f'SELECT * FROM "{t}"').fetchall()]
                           for t in tables})
    finally:
        con.close()


def test_a_folder_next_to_the_recipe_file_resolves_by_name(tmp_path):
    spec = load_job(folder_recipe(tmp_path))
    template = spec.template("poems/generator@1")
    assert template.ref == "poems/generator@1" and "Write a poem" in template.source
    db = tmp_path / "out.duckdb"
    run_job(spec, db=db)
    con = duckdb.connect(str(db), read_only=True)
    refs = {r for (r,) in con.execute("SELECT DISTINCT template FROM samples").fetchall()}
    con.close()
    assert refs == {"poems/generator@1"}  # the namespace is kept


def test_a_package_ships_its_templates_and_nothing_stored_holds_a_path(tmp_path, monkeypatch):
    site = package_recipe(tmp_path, monkeypatch)
    spec = parse_job(job("poem_pkg"), "job", str(tmp_path))
    assert spec.template("poems/reviewer@1").origin == "poem_pkg:prompts/poems/reviewer.v1.jinja"
    db = tmp_path / "out.duckdb"
    run_job(spec, db=db)
    text = stored(db)
    assert "poems/generator@1" in text
    assert str(site) not in text and str(tmp_path) not in text


def test_templates_dir_comes_before_the_recipe_and_the_recipe_before_built_ins(tmp_path, monkeypatch):
    package_recipe(tmp_path, monkeypatch)
    write_templates(tmp_path / "mine", generator="{% block user %}Mine: {{ topic }}{% endblock %}")
    (tmp_path / "mine" / "tinystories").mkdir()
    (tmp_path / "mine" / "tinystories" / "adjudicator.v1.jinja").write_text("{% block user %}{{ text }}{% endblock %}")
    spec = parse_job(job("poem_pkg", templates_dir="mine"), "job", str(tmp_path))
    assert spec.template("poems/generator@1").source.startswith("{% block user %}Mine")
    plain = parse_job(job("poem_pkg"), "job", str(tmp_path))
    assert plain.template("poems/generator@1").source == GENERATOR
    assert plain.template("tinystories/adjudicator@1").origin == "built-in"


def test_an_edited_package_template_makes_another_job_and_built_ins_keep_theirs(tmp_path, monkeypatch):
    site = package_recipe(tmp_path, monkeypatch)
    before = parse_job(job("poem_pkg"), "job", str(tmp_path)).fingerprint
    (site / "poem_pkg" / "prompts" / "poems" / "generator.v1.jinja").write_text(GENERATOR + " ")
    assert parse_job(job("poem_pkg"), "job", str(tmp_path)).fingerprint != before


def test_a_missing_template_names_every_place_looked(tmp_path, monkeypatch):
    package_recipe(tmp_path, monkeypatch)
    bad = job("poem_pkg")
    bad["roles"]["generator"]["template"] = "poems/generatr@1"
    with pytest.raises(JobError, match=r"poem_pkg:prompts/poems/generatr.v1.jinja or prompts/"):
        parse_job(bad, "job", str(tmp_path))
