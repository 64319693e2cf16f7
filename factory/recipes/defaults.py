"""Per-recipe defaults: the roles a recipe uses, their templates and sampling, and the
decision rule. A job's own values override these key by key."""
from __future__ import annotations


def _role(template: str, **sampling) -> dict:
    return {"template": template, "sampling": sampling}


RECIPE_DEFAULTS: dict[str, dict] = {
    "tinystories": {
        "roles": {
            "generator": _role("tinystories/generator@1", max_tokens=300),
            "reviewer": _role("tinystories/reviewer@1", temperature=0.7, max_tokens=160),
            "adjudicator": _role("tinystories/adjudicator@1", temperature=0.2, max_tokens=120),
        },
        # GRA-style: 3 reviewers, accept mean >= 7 and spread <= 1.5, reject mean < 5
        "decision": {"accept_mean": 7.0, "max_spread": 1.5, "reject_mean": 5.0},
        "score_range": (1, 10),
    },
    "textbook": {
        "roles": {
            "generator": _role("textbook/generator@1", max_tokens=600),
            "reviewer": _role("textbook/reviewer@1", temperature=0.7, max_tokens=160),
            "adjudicator": _role("textbook/adjudicator@1", temperature=0.2, max_tokens=120),
        },
        # phi-1 / FineWeb-Edu style: keep educational value >= 3 of 5
        "decision": {"accept_mean": 3.0, "max_spread": 1.0, "reject_mean": 2.0},
        "score_range": (0, 5),
    },
    "math": {
        "roles": {
            "problem_writer": _role("math/problem_writer@1", temperature=0.8, max_tokens=160),
            "generator": _role("math/program@1", temperature=0.7, max_tokens=320),
            "long_solver": _role("math/long_cot@1", temperature=0.7, max_tokens=512),
            "short_solver": _role("math/short_cot@1", temperature=0.7, max_tokens=160),
            "reviewer": _role("math/reviewer@1", temperature=0.7, max_tokens=120),
            "adjudicator": _role("math/adjudicator@1", temperature=0.2, max_tokens=120),
        },
        "decision": {"accept_mean": 6.0, "max_spread": 3.0, "reject_mean": 3.0},
        "score_range": (1, 10),
    },
}
