"""A recipe's own decision fields (issue 26 item 5): TinyStories' gates (max_out_of_vocabulary,
require_seed_words, min_seed_words) are its DecisionFields, not fields of the shared rule. A
tinystories job gives them under `decision:` as before; another recipe's job that gives one
is refused in one line; no job's fingerprint changes."""
import pickle
import textwrap

import pytest
import yaml

from support import REPO, fake_job, write_job
from factory.cli import main
from factory.recipes.tinystories import TinyStories
from factory.spec import DecisionRule, JobError, load_job, parse_job

FAKE = {"backend": "fake", "model": "fake"}
STORY_FIELDS = ("max_out_of_vocabulary", "require_seed_words", "min_seed_words")
SEED = {"verb": "jump", "noun": "ball", "adjective": "happy", "features": []}
STORY = ("Tom had a happy dog. The dog liked to jump over the red ball. One day the ball rolled away. "
         "Tom and the dog ran after it. They found it under a big tree and went home.")

# The fingerprints (and legacy fingerprints) of the shipped jobs, computed before the gates
# left the shared rule: moving them changed none.
SHIPPED = {
    "instruct.yaml": ("9d979632e6af8872", ["e38a6efaa1be06e5", "fdaa14b05cbe4968"]),
    "math-embedded.yaml": ("f35c02004d7106d0", ["3011b813b2727d0e", "af943266ba8d462f", "c292dc879a51a1c2"]),
    "math-reference-60k-wrong30.yaml": ("a2844962ff42fb09",
                                        ["f252a10fb7da77d1", "1916bac9ac8d5172", "95f642650aae8999"]),
    "math-reference-60k.yaml": ("4f7ad86813d62112", ["1e95bdfefa14bf08", "4b2c1d35447a0a44", "58d0c9d88c135a54"]),
    "math-reference-demo.yaml": ("4f7ad86813d62112", ["1e95bdfefa14bf08", "4b2c1d35447a0a44", "58d0c9d88c135a54"]),
    "math-reference.yaml": ("f41771e2c1ec360c", ["2101c17b1ba214c9", "810adfc5444a45d1", "537784d195c2bedd"]),
    "math.yaml": ("1166e26701090ed2", ["bf44be7e4a7cfd5d", "52cad50c087f4405", "2879bd176626c04c"]),
    "preference.yaml": ("4f1b40bbf2a281f2", ["57d08ae8314bc7d8", "9be9ed1a8f46eb4e"]),
    "textbook.yaml": ("bdd22d85b5a45923", ["6b3c2ed9948cfd0c", "0636b7e9f200ef26"]),
    "tinystories-demo-check.yaml": ("d0f8d3cb52f4931a", ["6d4f3b616cd31ffb", "7ddf880872ef6bfe"]),
    "tinystories-demo-tuning.yaml": ("af5bb376b96cbbf4", ["ec61fdc9a79bb64b", "e0ebaa5e542ac7cf"]),
    "tinystories-demo.yaml": ("c663952455b4b6d9", ["b568707a11cf20f2", "3bf54a83246fd094"]),
    "tinystories-hour.yaml": ("02487deb6dcdb928", ["dfd12c88d70f49aa", "e3e03bcd23efd2fb"]),
}
# fake_job's tinystories job with its gates given (tests/support.py), fingerprinted likewise before
FAKE_JOBS = {
    "462e7b6b370173f7": {},
    "e762bb94e3a85487": {"max_out_of_vocabulary": 0.0},
    "b8bf07265f70b182": {"require_seed_words": False},
    "8532c18d9804f425": {"min_seed_words": 2},
    "fc470f10cb6e25e9": {"max_out_of_vocabulary": 0.1, "require_seed_words": False, "min_seed_words": 1,
                         "truncated": "keep", "text_gates": "signal"},
}


def textbook(decision: dict) -> dict:
    return fake_job(recipe="textbook", options={"min_words": 20}, decision=decision,
                    roles={r: dict(FAKE) for r in ("generator", "reviewer", "adjudicator")})


def stored(spec) -> dict:
    """The job as a database stores it: its canonical spec (what probing/job.py reads back)."""
    data = {**spec.canonical(), "name": spec.name, "num_samples": spec.num_samples, "recipe": spec.recipe}
    data.pop("files", None)
    return data


def test_the_story_gates_are_tinystories_fields_not_the_shared_rules():
    assert not set(STORY_FIELDS) & set(DecisionRule.model_fields)
    assert set(STORY_FIELDS) <= set(TinyStories.DecisionFields.model_fields)
    rule = parse_job(fake_job()).decision
    assert isinstance(rule, DecisionRule)
    assert (rule.max_out_of_vocabulary, rule.require_seed_words, rule.min_seed_words) == (None, True, None)


def test_a_tinystories_job_with_its_gates_parses_and_decides_as_before():
    spec = parse_job(fake_job(decision={"max_out_of_vocabulary": 0.0, "require_seed_words": False,
                                        "min_seed_words": 2, "accept_mean": 6.0}))
    rule = spec.decision
    assert (rule.max_out_of_vocabulary, rule.require_seed_words, rule.min_seed_words, rule.accept_mean) == \
        (0.0, False, 2, 6.0)
    recipe = TinyStories(spec)
    assert recipe.rule_reject(recipe.rule_checks(SEED, STORY)) is None
    checks = recipe.rule_checks(SEED, STORY + " The quantum xylophone was ubiquitous.")
    assert checks["out_of_vocabulary_share"] > 0
    assert recipe.rule_reject(checks)[0] == "vocabulary"
    # the seed-word gate, on by default; off; at least 2 of 3
    no_ball = STORY.replace("ball", "toy")
    on = TinyStories(parse_job(fake_job()))
    assert on.rule_reject(on.rule_checks(SEED, no_ball)) == ("seed_words", "missing seed word(s): noun")
    off = TinyStories(parse_job(fake_job(decision={"require_seed_words": False})))
    assert off.rule_reject(off.rule_checks(SEED, no_ball)) is None
    two = TinyStories(parse_job(fake_job(decision={"min_seed_words": 2, "require_seed_words": True})))
    assert two.rule_reject(two.rule_checks(SEED, no_ball)) is None
    # the shared rule's own check still runs on the recipe's rule
    with pytest.raises(JobError, match=r"^<job>: decision: Value error, reject_mean must be <= accept_mean$"):
        parse_job(fake_job(decision={"reject_mean": 9.0, "require_seed_words": False}))


@pytest.mark.parametrize("field, value", [("require_seed_words", True), ("max_out_of_vocabulary", 0.1),
                                          ("min_seed_words", 2)])
def test_another_recipes_job_giving_a_story_gate_is_one_line_naming_it(field, value):
    with pytest.raises(JobError) as err:
        parse_job(textbook({field: value}), source="tb.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"tb.yaml: decision.{field}: unknown field; allowed here: accept_mean, ")
    assert "min_likelihood" in message and "require_seed_words," not in message


def test_factory_run_refuses_it_with_exit_2_and_one_line(tmp_path, capsys):
    db = tmp_path / "x.duckdb"
    path = write_job(tmp_path, {**textbook({"require_seed_words": True}), "db": str(db)})
    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "decision.require_seed_words: unknown field" in err, err
    assert not db.exists()


def test_stored_specs_of_other_recipes_read_back_with_the_former_shared_keys():
    # Every job's canonical spec wrote max_out_of_vocabulary and require_seed_words while they
    # were shared: a textbook job's stored spec still has them, at null / false, and reads back.
    spec = parse_job(textbook({}))
    data = stored(spec)
    assert (data["decision"]["max_out_of_vocabulary"], data["decision"]["require_seed_words"]) == (None, False)
    assert "min_seed_words" not in data["decision"]
    assert parse_job(data).fingerprint == spec.fingerprint
    assert parse_job(textbook({"require_seed_words": False, "max_out_of_vocabulary": None})).fingerprint == \
        spec.fingerprint
    story = parse_job(fake_job(decision={"min_seed_words": 2, "max_out_of_vocabulary": 0.2}))
    assert parse_job(stored(story)).fingerprint == story.fingerprint


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_jobs_keep_their_fingerprints(name):
    spec = load_job(REPO / "jobs" / name)
    assert (spec.fingerprint, spec.legacy_fingerprints()) == SHIPPED[name]
    assert parse_job(stored(spec), base_dir=str(REPO / "jobs")).fingerprint == spec.fingerprint


def test_tinystories_jobs_with_their_gates_keep_their_fingerprints():
    for fingerprint, decision in FAKE_JOBS.items():
        assert parse_job(fake_job(decision=decision)).fingerprint == fingerprint, decision


def test_a_recipe_in_a_file_declares_its_own_decision_field(tmp_path):
    (tmp_path / "short_lessons.py").write_text(textwrap.dedent('''
        from pydantic import BaseModel, ConfigDict, Field

        from factory.recipes.textbook import Textbook


        class ShortDecision(BaseModel):
            model_config = ConfigDict(extra="forbid", frozen=True)
            max_words: int | None = Field(None, ge=1)


        class ShortLessons(Textbook):
            DecisionFields = ShortDecision
    '''))
    job = {**textbook({}), "recipe": "short_lessons.py:ShortLessons"}
    plain = load_job(write_job(tmp_path, job))
    assert plain.decision.max_words is None and "max_words" not in plain.canonical()["decision"]
    capped = load_job(write_job(tmp_path, {**job, "decision": {"max_words": 300}}))
    assert capped.decision.max_words == 300 and capped.fingerprint != plain.fingerprint
    with pytest.raises(JobError, match=r"decision\.require_seed_words: unknown field; allowed here: .*max_words"):
        load_job(write_job(tmp_path, {**job, "decision": {"require_seed_words": True}}))
    with pytest.raises(JobError, match=r"decision\.max_words: unknown field"):
        parse_job(textbook({"max_words": 300}))


def test_a_spec_with_a_recipes_rule_pickles():
    spec = parse_job(fake_job(decision={"min_seed_words": 2}))
    again = pickle.loads(pickle.dumps(spec))
    assert again.decision == spec.decision and again.decision.min_seed_words == 2
    assert again.fingerprint == spec.fingerprint


def test_the_shipped_story_jobs_give_their_gates_under_decision():
    hour = yaml.safe_load((REPO / "jobs/tinystories-hour.yaml").read_text())
    given = set(hour.get("decision") or {}) & set(STORY_FIELDS)
    assert given, "the hour job gives a story gate under decision:"
    spec = load_job(REPO / "jobs/tinystories-hour.yaml")
    assert all(getattr(spec.decision, f) == hour["decision"][f] for f in given)
