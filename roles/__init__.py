"""Model roles: each is a prompt template plus a parse into a typed result or a Drop."""
from roles.adjudicator import Adjudicator, Verdict
from roles.base import Drop, Role
from roles.generator import Generator, Story
from roles.reviewer import Review, Reviewer

__all__ = ["Adjudicator", "Drop", "Generator", "Review", "Reviewer", "Role", "Story", "Verdict"]
