"""Model roles: each is a prompt template plus a parse into a typed result or a Drop."""
from roles.adjudicator import Adjudicator, Verdict
from roles.base import Drop, Role
from roles.generator import Generator, Story
from roles.math import ProblemWriter, ProgramWriter, Solver
from roles.reviewer import ProblemReviewer, ReviewResult, Reviewer, StoryReviewer, TextbookReviewer

__all__ = ["Adjudicator", "Drop", "Generator", "ProblemReviewer", "ProblemWriter", "ProgramWriter", "ReviewResult",
           "Reviewer", "Role", "Solver", "Story", "StoryReviewer", "TextbookReviewer", "Verdict"]
