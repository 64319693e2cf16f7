"""Model roles: each is a prompt template plus a parse into a typed result or a Drop."""
from roles.adjudicator import Adjudicator, Verdict
from roles.base import Drop, JsonRole, Role, parse_json_model, schema_of
from roles.generator import Generator, Story
from roles.instruct import InstructionWriter, PromptWriter, ResponseReview, ResponseReviewer
from roles.math import Editor, ProblemWriter, ProgramWriter, Solver, Suggester
from roles.reviewer import (EducationalReview, ProblemReview, ProblemReviewer, ReviewResult, Reviewer, Rubric,
                            StoryReview, StoryReviewer, TextbookReviewer)

__all__ = ["Adjudicator", "Drop", "EducationalReview", "Editor", "Generator", "InstructionWriter", "JsonRole",
           "ProblemReview", "ProblemReviewer", "ProblemWriter", "ProgramWriter", "PromptWriter", "ResponseReview",
           "ResponseReviewer", "ReviewResult", "Reviewer", "Role", "Rubric", "Solver", "Story", "StoryReview",
           "StoryReviewer", "Suggester", "TextbookReviewer", "Verdict", "parse_json_model", "schema_of"]
