"""Users bring their own recipes, templates, rubrics and backends (issue 10): a recipe in a
file next to a job, an entry-point recipe in an installed package, path templates and a
templates_dir, a backend class named module:Class that runs inside Ray engine actors."""
from __future__ import annotations

import json
import textwrap

import pytest
import yaml
from support import fake_job, query, write_job

from factory.cli import main
from factory.pipeline import run_job
from factory.spec import JobError, load_job, parse_job

FAKE = {"backend": "fake", "model": "fake"}


def install_entry_point_package(tmp_path, monkeypatch) -> None:
    """A package outside factory/ that declares `factory.recipes` and `factory.backends`
    entry points, found the way pip-installed packages are (a .dist-info on sys.path)."""
    site = tmp_path / "site"
    (site / "limerick_pkg").mkdir(parents=True)
    (site / "limerick_pkg" / "__init__.py").write_text(textwrap.dedent('''
        from factory.recipes.base import RoleDef, TextRecipe, rng_for
        from roles import Adjudicator, Generator, Reviewer, Rubric
        from roles.reviewer import Critique, Score1to10


        class LimerickReview(Rubric):
            rhyme: Score1to10
            humour: Score1to10
            critique: str = Critique


        class LimerickReviewer(Reviewer):
            output = LimerickReview


        class Limerick(TextRecipe):
            description = "limericks about animals"
            truncated = "keep"  # 60-token limericks: a cut-off one is still reviewed
            roles = {
                "generator": RoleDef(lambda t, r: Generator(t, min_words=5), "tinystories/generator@1",
                                     frozenset({"verb", "noun", "adjective", "features"}), {"max_tokens": 60}),
                "reviewer": RoleDef(lambda t, r: LimerickReviewer(t), "tinystories/reviewer@1",
                                    frozenset({"verb", "noun", "adjective", "features", "story"}), {"max_tokens": 60}),
                "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "tinystories/adjudicator@1",
                                       frozenset({"verb", "noun", "adjective", "features", "story", "reviews"}),
                                       {"max_tokens": 60}),
            }
            decision = {"accept_mean": 6.0, "max_spread": 3.0, "reject_mean": 3.0}

            def make_seed(self, index):
                animal = rng_for(self.spec.seed, index).choice(["cat", "dog", "frog"])
                return {"verb": "jump", "noun": animal, "adjective": "happy", "features": []}

            def review_variables(self, seed, sample):
                return {**seed, "story": sample["text"]}
    '''))
    dist = site / "limerick_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: limerick-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[factory.recipes]\nlimerick = limerick_pkg:Limerick\n\n"
                                           "[factory.backends]\nfake-plugin = fakes:FakeBackendPlugin\n")
    monkeypatch.syspath_prepend(str(site))


def test_factory_recipes_lists_built_ins_and_entry_point_plugins(tmp_path, monkeypatch, capsys):
    install_entry_point_package(tmp_path, monkeypatch)
    from factory import recipes

    found = {r["name"]: r for r in recipes()}
    assert {"tinystories", "textbook", "math", "instruct", "preference", "limerick"} <= set(found)
    assert found["limerick"]["source"] == "entry point limerick_pkg:Limerick"
    assert found["preference"]["roles"]["prompt_writer"] == "preference/prompt_writer@1"
    assert found["math"]["options"] == ["source", "seed_file", "parent_job", "families", "max_steps", "programs"]
    # each recipe's review axes (issue 24 item 5), a plugin's own rubric included
    assert found["tinystories"]["axes"] == ["grammar", "creativity", "consistency", "plot"]
    assert found["math"]["axes"] == ["clarity", "solvability"]
    assert {"rhyme", "humour"} <= set(found["limerick"]["axes"])
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "limerick" in out and "axes" in out and "rhyme" in out


def test_entry_point_recipe_and_backend_run_and_its_rubric_reaches_stats(tmp_path, monkeypatch):
    install_entry_point_package(tmp_path, monkeypatch)
    job = fake_job(recipe="limerick", num_samples=6, roles={r: {"backend": "fake-plugin", "model": "fake"}
                                                            for r in ("generator", "reviewer", "adjudicator")})
    db = tmp_path / "l.duckdb"
    run_job(parse_job(job), db=db)
    from factory import stats

    s = stats(db)
    assert set(s["scores"]) >= {"rhyme", "humour"} and "grammar" not in s["scores"]
    assert query(db, "SELECT DISTINCT recipe FROM jobs") == [("limerick",)]
    assert query(db, "SELECT count(*) FROM reviews WHERE role = 'reviewer'")[0][0] > 0


def test_a_plugin_that_fails_to_import_names_its_module_and_error(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("import not_a_real_module_xyz\n")
    job = write_job(tmp_path, {**fake_job(), "recipe": "broken.py:Nope"})
    db = tmp_path / "x.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.py" in err and "ModuleNotFoundError" in err and "not_a_real_module_xyz" in err
    assert len(err.splitlines()) == 1 and not db.exists()


def test_an_unknown_recipe_lists_what_exists_and_where_plugins_are_found(tmp_path, capsys):
    job = write_job(tmp_path, {**fake_job(), "recipe": "haiku"})
    db = tmp_path / "x.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'haiku'" in err and "tinystories, textbook, math, instruct, preference" in err
    assert "entry point group factory.recipes" in err and not db.exists()


def test_a_job_without_recipe_or_with_duplicate_keys_is_refused(tmp_path, capsys):
    no_recipe = {k: v for k, v in fake_job().items() if k != "recipe"}
    with pytest.raises(JobError, match="recipe: missing"):
        parse_job(no_recipe)
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(fake_job()) + "seed: 9\n")
    assert main(["run", str(path), "--db", str(tmp_path / "x.duckdb"), "--quiet"]) == 2
    assert "line" in capsys.readouterr().err and not (tmp_path / "x.duckdb").exists()


def test_user_templates_by_path_and_templates_dir(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "story.jinja").write_text(
        '{% block user %}Ecris une histoire avec "{{ verb }}", "{{ noun }}" et "{{ adjective }}".{% endblock %}')
    (tmp_path / "tpl" / "tinystories").mkdir(parents=True)
    (tmp_path / "tpl" / "tinystories" / "reviewer.v1.jinja").write_text(
        "{% block user %}Note cette histoire: {{ story }} (JSON){% endblock %}")
    job = fake_job(templates_dir="tpl")
    job["roles"]["generator"]["template"] = "./mine/story.jinja"
    path = write_job(tmp_path, job)
    spec = load_job(path)
    db = tmp_path / "t.duckdb"
    run_job(spec, db=db)
    import fakes

    prompts = [r.messages[-1]["content"] for r in fakes.CALLS]
    assert any(p.startswith("Ecris une histoire") for p in prompts)
    assert any(p.startswith("Note cette histoire") for p in prompts)
    templates = {t for (t,) in query(db, "SELECT DISTINCT template FROM samples UNION SELECT DISTINCT template "
                                         "FROM reviews")}
    assert templates == {"story@0", "tinystories/reviewer@1"}


def test_template_errors_name_file_line_and_variable_and_write_nothing(tmp_path, capsys):
    (tmp_path / "bad.jinja").write_text("{% block user %}\nhello {{ verb }\n{% endblock %}")
    (tmp_path / "extra.jinja").write_text("{% block user %}\nA {{ verb }}\nabout {{ planet }}{% endblock %}")
    db = tmp_path / "x.duckdb"
    for name, expected in (("bad.jinja", "bad.jinja:2: template syntax error"),
                           ("extra.jinja", "extra.jinja:3: template extra@0 uses `planet`, which recipe tinystories "
                                           "(role generator) does not provide")):
        job = fake_job()
        job["roles"]["generator"]["template"] = name
        path = write_job(tmp_path, job)
        assert main(["run", str(path), "--db", str(db), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1
    job = fake_job()
    job["roles"]["reviewer"]["template"] = "tinystories/nope@3"
    assert main(["run", str(write_job(tmp_path, job)), "--db", str(db), "--quiet"]) == 2
    assert "no file prompts/tinystories/nope.v3.jinja" in capsys.readouterr().err
    assert not db.exists()


def test_a_backend_class_named_in_the_job_runs_inside_ray_actors(tmp_path):
    """fakes is on the driver's sys.path only (tests/): the entry travels to the actors."""
    job = fake_job(num_samples=4, execution={"executor": "ray", "engines": 1, "batch_size": 4},
                   roles={r: {"backend": "fakes:FakeBackendPlugin", "model": "fake"}
                          for r in ("generator", "reviewer", "adjudicator")})
    db = tmp_path / "r.duckdb"
    result = run_job(parse_job(job), db=db)
    assert result.seeds_processed == 4
    models = {json.loads(m)["backend"] for (m,) in query(db, "SELECT DISTINCT model FROM reviews")}
    assert models == {"fake"} and query(db, "SELECT count(*) FROM reviews")[0][0] > 0


def test_factory_init_writes_files_that_load(tmp_path, capsys):
    assert main(["init", "haiku", "--dir", str(tmp_path)]) == 0
    spec = load_job(tmp_path / "haiku.yaml")
    assert spec.recipe == "haiku_recipe.py:Haiku" and spec.options == {"subjects": ["the sea", "a garden", "the moon"],
                                                                       "min_words": 12}
    assert main(["init", "haiku", "--dir", str(tmp_path)]) == 1  # never overwrites
    assert "exists" in capsys.readouterr().err


def test_factory_init_sizes_the_json_roles_max_tokens_from_their_schemas(tmp_path):
    """issue 24 item 4: the scaffold's reviewer cap (120) cut 1 in 4 reviews of a 3-axis
    rubric; it is now the schema's bound, so an added axis raises it."""
    from roles.adjudicator import Verdict
    from roles.base import json_tokens_bound

    assert main(["init", "haiku", "--dir", str(tmp_path / "two")]) == 0
    spec = load_job(tmp_path / "two" / "haiku.yaml")
    reviewer, adjudicator = spec.roles["reviewer"].sampling.max_tokens, spec.roles["adjudicator"].sampling.max_tokens
    assert reviewer == 261 and adjudicator == json_tokens_bound(Verdict) == 252
    assert main(["init", "haiku", "--dir", str(tmp_path / "three")]) == 0
    recipe = tmp_path / "three" / "haiku_recipe.py"
    recipe.write_text(recipe.read_text().replace("    imagery: Score1to10\n",
                                                 "    imagery: Score1to10\n    originality: Score1to10\n"))
    assert load_job(tmp_path / "three" / "haiku.yaml").roles["reviewer"].sampling.max_tokens == 279 > reviewer


@pytest.mark.model
def test_a_file_recipe_and_an_entry_point_recipe_run_through_ray_on_the_real_model(tmp_path, monkeypatch):
    """`factory init` writes a one-file recipe with its own templates and rubric; it runs
    through Ray on SmolLM2-135M, and so does the entry-point recipe (~1 min on 2 cores)."""
    assert main(["init", "haiku", "--dir", str(tmp_path)]) == 0
    db = tmp_path / "h.duckdb"
    assert main(["run", str(tmp_path / "haiku.yaml"), "--db", str(db), "--limit", "2", "--quiet"]) == 0
    assert query(db, "SELECT count(*) FROM done_seeds") == [(2,)]
    scores = [json.loads(s) for (s,) in query(db, "SELECT scores FROM reviews")]
    assert scores and all(set(s) == {"clarity", "imagery"} for s in scores)
    assert {m for (m,) in query(db, "SELECT DISTINCT json_extract_string(model, '$.model') FROM samples")} == \
        {"smollm2-135m-instruct-q4_1"}

    install_entry_point_package(tmp_path, monkeypatch)
    job = {"name": "lim", "recipe": "limerick", "num_samples": 2, "reviewers": 1,
           "execution": {"executor": "ray", "batch_size": 2}}
    db2 = tmp_path / "l.duckdb"
    assert main(["run", str(write_job(tmp_path, job, "lim.yaml")), "--db", str(db2), "--quiet"]) == 0
    assert query(db2, "SELECT count(*) FROM done_seeds") == [(2,)]
    scores = [json.loads(s) for (s,) in query(db2, "SELECT scores FROM reviews")]
    assert scores and all(set(s) == {"rhyme", "humour"} for s in scores)


def test_a_schema_the_llamacpp_grammar_cannot_hold_is_refused_before_generation(tmp_path, capsys):
    (tmp_path / "long_recipe.py").write_text(textwrap.dedent('''
        from pydantic import BaseModel, ConfigDict, Field
        from factory.recipes.base import RoleDef, TextRecipe
        from roles import JsonRole, Reviewer, StoryReview


        class Essay(BaseModel):
            model_config = ConfigDict(extra="forbid")
            text: str = Field(max_length=5000)


        class EssayWriter(JsonRole):
            name = "generator"
            output = Essay


        class StoryReviewer2(Reviewer):
            output = StoryReview


        class LongEssays(TextRecipe):
            roles = {"generator": RoleDef(lambda t, r: EssayWriter(t), "tinystories/generator@1",
                                          frozenset({"verb", "noun", "adjective", "features"})),
                     "reviewer": RoleDef(lambda t, r: StoryReviewer2(t), "tinystories/reviewer@1",
                                         frozenset({"verb", "noun", "adjective", "features", "story"}))}

            def make_seed(self, index):
                return {"verb": "run", "noun": "cat", "adjective": "red", "features": []}
    '''))
    job = write_job(tmp_path, {"name": "long", "recipe": "long_recipe.py:LongEssays", "num_samples": 1})
    db = tmp_path / "x.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "roles.generator: output schema $.text: maxLength 5000" in err and len(err.splitlines()) == 1
    assert not db.exists()


RUBRIC_RECIPE = '''
from typing import ClassVar
from factory.recipes.base import RoleDef, TextRecipe
from roles import Reviewer, Rubric
from roles.reviewer import Critique, Score1to10


class SqlReview(Rubric):
    clarity: Score1to10
    sql_correctness: {annotation}
    critique: str = Critique{extra}


class SqlReviewer(Reviewer):
    output = SqlReview


class Sql(TextRecipe):
    roles = {{"generator": TextRecipe.roles.get("generator") or __import__("factory.recipes.tinystories",
                fromlist=["x"]).TinyStories.roles["generator"],
             "reviewer": RoleDef(lambda t, r: SqlReviewer(t), "tinystories/reviewer@1",
                                 frozenset({{"verb", "noun", "adjective", "features", "story"}}))}}

    def make_seed(self, index):
        return {{"verb": "run", "noun": "cat", "adjective": "red", "features": []}}
'''


@pytest.mark.parametrize("annotation, extra, field", [("str", "", "'sql_correctness' is str"),
                                                       ("list[int]", "", "'sql_correctness' is list[int]"),
                                                       ("Score1to10", "\n    notes: str", "'notes' is str")])
def test_a_rubric_field_that_cannot_be_scored_is_refused_at_load(tmp_path, capsys, annotation, extra, field):
    """issue 24 item 5: a `str` axis was silently left out of stats and the report."""
    (tmp_path / "sql_recipe.py").write_text(RUBRIC_RECIPE.format(annotation=annotation, extra=extra))
    job = write_job(tmp_path, {"name": "sql", "recipe": "sql_recipe.py:Sql", "num_samples": 1,
                               "roles": {r: FAKE for r in ("generator", "reviewer")}})
    db = tmp_path / "x.duckdb"
    assert main(["run", str(job), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not db.exists()
    assert f"roles.reviewer: rubric SqlReview: field {field}: a rubric field is a score" in err
    assert "a label (a Literal of strings) or free text" in err


def test_a_rubric_may_name_its_own_free_text_fields(tmp_path):
    extra = "\n    notes: str = Critique\n    free_text: ClassVar[tuple[str, ...]] = (\"critique\", \"notes\")"
    (tmp_path / "sql_recipe.py").write_text(RUBRIC_RECIPE.format(annotation="bool", extra=extra))
    job = write_job(tmp_path, {"name": "sql", "recipe": "sql_recipe.py:Sql", "num_samples": 1,
                               "roles": {r: FAKE for r in ("generator", "reviewer")}})
    assert load_job(job).recipe == "sql_recipe.py:Sql"


def test_the_recipes_verb_and_the_recipes_package_both_import(tmp_path):
    """issue 24 item 8: the verb factory.recipes() shadowed the package factory/recipes/,
    so `import factory.recipes.base as b` failed; both work, in a fresh interpreter."""
    import subprocess
    import sys

    code = textwrap.dedent('''
        import factory.recipes.base as b
        import factory.recipes.registry as registry
        from factory.recipes.base import Recipe
        import factory
        from factory import recipes
        assert b.Recipe is Recipe and registry.find_recipe("math").name == "math"
        assert {r["name"] for r in factory.recipes()} >= {"tinystories", "math"}
        assert recipes() == factory.recipes()
        import factory.report as report_module
        assert report_module.__name__ == "factory.report" and callable(factory.report)
    ''')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_recipe_errors_name_the_field_once_and_suggest_a_close_name(tmp_path, capsys):
    (tmp_path / "haiku_recipe.py").write_text("from factory.recipes.tinystories import TinyStories\n\n\n"
                                              "class Haiku(TinyStories):\n    pass\n")
    db = tmp_path / "x.duckdb"
    for recipe, expected in (("tinystory", "recipe: unknown recipe 'tinystory'; did you mean tinystories?"),
                             ("haiku_recipe.py:Haikuu", "recipe: 'haiku_recipe.py:Haikuu': haiku_recipe.py has no "
                                                        "Haikuu; did you mean Haiku?"),
                             ("nope.py:Haiku", "recipe: 'nope.py:Haiku': no file")):
        job = write_job(tmp_path, {**fake_job(), "recipe": recipe})
        assert main(["run", str(job), "--db", str(db), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "recipe: recipe" not in err and len(err.splitlines()) == 1
    assert not db.exists()
