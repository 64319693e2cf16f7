"""`factory preview JOB [--n 3] [--run]`: what a job would send before it is run. Every
role's messages for the first n seeds, rendered from the seed (a variable that only a run
provides, such as the generator's text for a reviewer, shows as <name>), with no model
call. With run=True the n seeds go through the job's real pipeline into a database in a
temporary folder, removed after: each sample's output, gates and verdict are shown and
nothing is written to the job's database."""
from __future__ import annotations

import tempfile
from pathlib import Path

import jinja2

from roles.templates import TemplateError


def rendered(spec, recipe, seed: dict) -> dict[str, list[dict] | str]:
    """role -> its chat messages for this seed, or a line saying why they cannot be shown."""
    out = {}
    for name, definition in recipe.roles.items():
        role_spec = spec.roles.get(name)
        if role_spec is None:
            continue
        variables = {**{v: f"<{v}>" for v in definition.provides}, **seed}
        try:
            role = definition.make(spec.template(role_spec.template), recipe)
            out[name] = [dict(m) for m in role.messages(variables)]
        except (TemplateError, jinja2.TemplateError, TypeError, KeyError, ValueError, AttributeError) as err:
            out[name] = f"cannot render from the seed alone ({type(err).__name__}: {err})"
    return out


def preview(spec, n: int = 3, run: bool = False, address: str | None = None) -> list[dict]:
    """One entry a seed: {seed_index, seed, messages}, and with run=True {samples, drops}:
    each sample's explain story (text, gates, reviews, verdict) and the seed's drop rows."""
    from factory.pipeline import make_recipe

    if n < 1:
        raise ValueError(f"--n: must be >= 1 (got {n})")
    n = min(n, spec.num_samples)
    recipe = make_recipe(spec, spec.db)  # reads nothing yet: the database is not opened
    out = []
    for i in range(n):
        seed = recipe.make_seed(i)
        entry = {"seed_index": i, "seed": seed if isinstance(seed, dict) else {"error": seed.reason}}
        entry["messages"] = rendered(spec, recipe, seed) if isinstance(seed, dict) else {}
        out.append(entry)
    if run:
        _run_into_temporary(spec, n, address, out)
    return out


def _run_into_temporary(spec, n: int, address: str | None, entries: list[dict]) -> None:
    from factory.explain import explain
    from factory.pipeline import run_job
    from stores import open_database
    from stores.preview import seed_drops, seed_samples

    with tempfile.TemporaryDirectory(prefix="factory-preview-") as folder:
        db = Path(folder) / "preview.duckdb"
        result = run_job(spec, db=db, limit=n, address=address)
        con = open_database(db, read_only=True)
        try:
            for entry in entries:
                entry["samples"] = [explain(con, s) for s in seed_samples(con, result.job, entry["seed_index"])]
                entry["drops"] = seed_drops(con, result.job, entry["seed_index"])
        finally:
            con.close()


def preview_text(entries: list[dict]) -> str:
    """Plain text of a preview: a block a seed, a block a role's messages."""
    lines = []
    for e in entries:
        lines.append(f"=== seed #{e['seed_index']}: {e['seed']}")
        for role, messages in e["messages"].items():
            lines.append(f"--- {role}")
            if isinstance(messages, str):
                lines.append(f"  ({messages})")
                continue
            for m in messages:
                lines.append(f"  [{m['role']}] " + m["content"].replace("\n", "\n  "))
        for story in e.get("samples", []):
            lines.append(f"--> sample {story['sample_id']}: {story['text'][:300]!r}")
            for gate in story.get("gates") or []:
                lines.append(f"    gate {gate['gate']}: {gate['result']}")
            for r in story["reviews"]:
                lines.append(f"    review #{r['reviewer_index']}: overall {r['overall']} {r['scores']}")
            v = story["verdict"]
            lines.append(f"    verdict: {v['decision']} by {v['stage']}: {v['reason']}" if v else "    verdict: none")
        for d in e.get("drops", []):
            lines.append(f"--> dropped {d['role']} output: {d['reason']}")
    return "\n".join(lines)
