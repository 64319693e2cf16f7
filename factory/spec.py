"""Reading a job: YAML in, a JobSpec out, checked against its recipe. The model and its
fingerprint are factory/job_spec.py (the core); this module sits above the recipes because
reading a job fills in its recipe's defaults and validates its options. Reading the file is
factory/job_file.py, the error type factory/job_errors.py, the load-time checks of templates,
backends and signals factory/job_checks.py.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from factory.job_errors import JobError, one_line_error  # noqa: F401 - callers import them from here
from factory.job_file import read_yaml  # noqa: F401 - callers import it from here
from factory.job_spec import (  # noqa: F401 - callers import the model's parts from here
    FORMER_SHARED_DECISION_KEYS, NOT_FINGERPRINTED, BenchmarkFile, CorpusFile, CurationSpec, DecisionRule,
    EndpointSpec, ExecutionSpec, JobSpec, ModelRef, QualityWeights, RoleSpec, SamplingParams, Strict,
    own_decision_defaults, recipe_decision_defaults, recipe_decision_rule)

LEGACY_OPTION_KEYS = ("textbook", "math")  # options lived under the recipe's name before `options:`


def _with_recipe_defaults(data: dict, recipe, source: str) -> dict:
    """Fill each role and the decision rule from the recipe's defaults, so the spec that
    is fingerprinted and recorded says everything that was run."""
    roles = data.get("roles") or {}
    if not isinstance(roles, dict):
        return data  # the model's own check names the problem
    unknown = sorted(set(roles) - set(recipe.roles))
    if unknown:
        raise JobError(f"{source}: roles.{unknown[0]}: not a role of recipe {recipe.name}; its roles: "
                       f"{', '.join(recipe.roles)}")
    merged = {}
    for role, definition in recipe.roles.items():
        given, default = roles.get(role) or {}, definition.defaults()
        if not isinstance(given, dict):
            merged[role] = given
            continue
        sampling = given.get("sampling") or {}
        merged[role] = {**default, **given,
                        "sampling": {**default["sampling"], **sampling} if isinstance(sampling, dict) else sampling}
    data = {**data, "roles": merged}
    if isinstance(data.get("decision", {}), dict):
        data["decision"] = {**recipe_decision_defaults(recipe), **(data.get("decision") or {})}
    return data


def _parse_decision(data: dict, recipe, source: str) -> DecisionRule | None:
    """The job's `decision:` checked by its recipe's rule; None where it is no mapping (the
    JobSpec's own check names what it is). A key the shared rule had for every recipe, at the
    value it had there, is dropped where the recipe does not declare it (stored specs carry it)."""
    given = data.get("decision", {})
    if not isinstance(given, dict):
        return None
    rule = recipe_decision_rule(recipe)
    given = {k: v for k, v in given.items() if not (k in FORMER_SHARED_DECISION_KEYS and k not in rule.model_fields
                                                   and v == FORMER_SHARED_DECISION_KEYS[k][0])}
    try:
        return rule.model_validate(given)
    except ValidationError as err:
        message = one_line_error(source, err, rule)
        whole = f"{source}: (top level): "  # a check of the whole rule (reject_mean <= accept_mean)
        raise JobError(message.replace(whole, f"{source}: decision: ", 1) if message.startswith(whole)
                       else message.replace(f"{source}: ", f"{source}: decision.", 1)) from None


def parse_job(data: dict, source: str = "<job>", base_dir: str | None = None) -> JobSpec:
    """A job mapping -> a checked JobSpec: the recipe is found, its defaults filled in, its
    options validated, every role's template loaded and its variables checked. Every
    problem is one JobError line, raised before anything is written."""
    from factory.plugins import PluginError
    from factory.recipes.registry import find_recipe
    from roles.templates import TemplateError

    if not isinstance(data, dict):
        raise JobError(f"{source}: (top level): expected a mapping of job fields")
    name = data.get("recipe")
    if name is None:
        raise JobError(f"{source}: recipe: missing; name one of `factory recipes`, or module:Class / file.py:Class")
    if not isinstance(name, str):
        raise JobError(f"{source}: recipe: expected a recipe name (got {name!r})")
    try:
        recipe = find_recipe(name, base_dir)
    except PluginError as err:
        # the field is named once: "recipe: 'x.py:Haiku': ...", not "recipe: recipe 'x.py:Haiku': ..."
        message = str(err).removeprefix("recipe ") if str(err).startswith(f"recipe {name!r}") else str(err)
        raise JobError(f"{source}: recipe: {message}") from None
    legacy = {k: data[k] for k in LEGACY_OPTION_KEYS if k in data}
    data = _with_recipe_defaults({k: v for k, v in data.items() if k not in legacy}, recipe, source)
    for key, value in legacy.items():
        if key != recipe.name:
            raise JobError(f"{source}: {key}: options of recipe {key}, but this job's recipe is {recipe.name}")
        if data.get("options") is not None:
            raise JobError(f"{source}: {key}: give the recipe's options once, under `options:`")
        data["options"] = value if value is not None else {}
    decision = _parse_decision(data, recipe, source)
    try:  # the decision rule is the recipe's: checked on its own, above
        spec = JobSpec.model_validate(data if decision is None else {**data, "decision": decision})
    except ValidationError as err:
        raise JobError(one_line_error(source, err, JobSpec)) from None
    try:
        options = recipe.Options.model_validate(spec.options or {})
    except ValidationError as err:
        raise JobError(one_line_error(source, err, recipe.Options).replace(f"{source}: ", f"{source}: options.", 1)) \
            from None
    dumped = options.model_dump(mode="json")
    spec = spec.model_copy(update={"options": dumped or None})
    spec._base_dir = base_dir
    spec.with_recipe(recipe.templates_location(), recipe_decision_defaults(recipe))
    spec._files = spec.user_files()
    from factory.job_checks import check_expected_scores, check_likelihood, check_reviewers, check_roles, check_rubrics

    try:
        check_reviewers(spec, recipe)
        check_roles(spec, recipe)
        check_rubrics(spec, recipe)
        check_likelihood(spec)
        check_expected_scores(spec, recipe)
    except (TemplateError, PluginError, JobError) as err:
        raise JobError(f"{source}: {err}") from None
    return spec


def load_job(path: str | Path) -> JobSpec:
    path = Path(path)
    return parse_job(read_yaml(path), str(path), str(path.resolve().parent))


def recipe_of(spec: JobSpec):
    """The recipe class a job runs (a built-in name, module:Class, or file.py:Class read from
    the job file's folder)."""
    from factory.recipes.registry import find_recipe

    return find_recipe(spec.recipe, spec.base_dir)


def with_recipe_known(spec: JobSpec) -> JobSpec:
    """The spec, knowing its recipe (JobSpec.with_recipe) even where it was built as a model
    (`JobSpec(...)` in Python) rather than read by parse_job, which sets it."""
    if not spec.recipe_known:
        recipe = recipe_of(spec)
        spec.with_recipe(recipe.templates_location(), recipe_decision_defaults(recipe))
    return spec


def known_fingerprints(spec: JobSpec) -> list[str]:
    """The job's fingerprint, then those it had earlier (JobSpec.legacy_fingerprints): a
    database made then holds the job under one of them."""
    spec = with_recipe_known(spec)
    return [spec.fingerprint, *spec.legacy_fingerprints()]


def spec_of(job) -> JobSpec | None:
    """The JobSpec a job argument names (a JobSpec, a dict, a YAML path), or None for a job
    name or fingerprint (which only a database can resolve)."""
    if isinstance(job, JobSpec):
        return job
    if isinstance(job, dict):
        return parse_job(job)
    if isinstance(job, Path) or Path(str(job)).is_file():
        return load_job(job)  # a missing Path: JobError "no such job file"
    return None
