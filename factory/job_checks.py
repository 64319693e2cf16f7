"""Load-time checks of a parsed job: every template loads and reads only what the recipe
provides, every backend is known, the signals the job asks for have a backend that can
give them. Each problem is one JobError line, raised before anything is written."""
from __future__ import annotations

from typing import TYPE_CHECKING

from factory.job_errors import JobError

if TYPE_CHECKING:
    from factory.job_spec import JobSpec


def check_likelihood(spec: JobSpec) -> None:
    """A job that asks for the likelihood signal (min_likelihood or likelihood_model) needs
    a reference model whose backend can score texts: refused here, before anything is written.
    An openai reference model is accepted with its endpoint: whether its server returns prompt
    logprobs is known only from its first answer (one line then, factory/steps/likelihood.py)."""
    from factory.backends import registered
    from factory.backends.base import SERVER_SCORING_BACKENDS, score_unsupported
    from factory.steps.likelihood import asks_for_likelihood, can_score, reference_model

    rule = spec.decision
    if not asks_for_likelihood(spec):
        return  # not asked: the signal is stored where the model can give it, skipped elsewhere
    field = "decision.likelihood_model" if rule.likelihood_model is not None else "decision.min_likelihood"
    ref = reference_model(spec)
    if ref is None:
        raise JobError(f"{field}: recipe {spec.recipe} has no generator to take the reference model from; "
                       "set decision.likelihood_model")
    try:
        registered(ref.backend, spec.base_dir)
    except ValueError as err:
        raise JobError(f"decision.likelihood_model.backend: {err}") from None
    if ref.backend in SERVER_SCORING_BACKENDS:
        if ref.endpoint is None:
            raise JobError(f"{field}: backend {ref.backend} needs endpoint.base_url (its server gives the prompt "
                           "logprobs), e.g. {backend: openai, model: NAME, endpoint: {base_url: "
                           "http://127.0.0.1:8000/v1}}")
        return
    if not can_score(ref.backend, spec.base_dir):
        raise JobError(f"{field}: {score_unsupported(ref.backend)}")


def check_expected_scores(spec: JobSpec, recipe) -> None:
    """decision.review_score: expected needs a `reviewer` role whose rubric has integer
    axes and whose every model's backend gives token probabilities: refused here."""
    from factory.backends import registered
    from factory.backends.base import expected_unsupported
    from factory.steps.review import can_expect, review_rubric_axes

    if spec.decision.review_score != "expected":
        return
    field = "decision.review_score"
    if "reviewer" not in spec.roles:
        raise JobError(f"{field}: expected scores are computed for the `reviewer` role; recipe {spec.recipe} has none "
                       "(use review_score: sampled)")
    for ref in spec.roles["reviewer"].models():
        registered(ref.backend, spec.base_dir)  # an unknown backend: check_roles named it already
        if not can_expect(ref.backend, spec.base_dir):
            raise JobError(f"{field}: expected: reviewer model {ref.model}: {expected_unsupported(ref.backend)}")
    axes = review_rubric_axes(spec, recipe)
    if axes is not None and not axes:
        raise JobError(f"{field}: expected: recipe {spec.recipe}'s reviewer rubric has no integer score axes "
                       "(Literal[1..10] fields) to take an expectation over; use review_score: sampled")


def check_rubrics(spec: JobSpec, recipe) -> None:
    """Every reviewing role's rubric has only fields the rubric machinery can score, label
    or keep as free text: a `str` axis would otherwise vanish silently from stats."""
    from factory.steps.review import role_rubric
    from roles.reviewer import rubric_problem

    for name in spec.roles:
        rubric = role_rubric(spec, recipe, name)
        if rubric is None:
            continue
        problem = rubric_problem(rubric)
        if problem:
            raise JobError(f"roles.{name}: rubric {rubric.__name__}: {problem}")


def check_reviewers(spec: JobSpec, recipe) -> None:
    """`reviewers: 0` (gates alone decide) only where the recipe can work without reviews."""
    if spec.reviewers < recipe.min_reviewers:
        raise JobError(f"reviewers: recipe {recipe.name} needs at least {recipe.min_reviewers} (got {spec.reviewers})")
    if spec.reviewers == 0 and spec.decision.review_score == "expected":
        raise JobError("decision.review_score: expected reads the reviews; with reviewers: 0 there are none")
    quorum = spec.decision.min_reviews
    if quorum is not None and quorum > spec.reviewers:
        raise JobError(f"decision.min_reviews: {quorum} is more than reviewers ({spec.reviewers}): no sample could "
                       "reach it; set it to at most reviewers")
    for key, default in (("replacement_reviews", 0), ("below_quorum", "drop")):
        if quorum is None and getattr(spec.decision, key) != default:
            raise JobError(f"decision.{key}: acts on samples below decision.min_reviews, which is not set")
    if spec.decision.below_quorum == "adjudicator" and "adjudicator" not in spec.roles:
        raise JobError(f"decision.below_quorum: adjudicator, but recipe {recipe.name} has no adjudicator role")


def check_roles(spec: JobSpec, recipe) -> None:
    """Every role's template loads and reads only variables the recipe provides; every
    backend is known (plugins import here, not in the middle of a run)."""
    from factory.backends import registered
    from roles.templates import check_variables

    for name, role in spec.roles.items():
        template = spec.template(role.template)
        check_variables(template, set(recipe.roles[name].provides), f"recipe {recipe.name} (role {name})")
        for ref in role.models():
            try:
                entry = registered(ref.backend, spec.base_dir)
                if entry.check is not None:  # a backend that serves only some roles says so here, not mid-run
                    entry.check(name, spec, recipe)
            except ValueError as err:
                raise JobError(f"roles.{name}.backend: {err}") from None
