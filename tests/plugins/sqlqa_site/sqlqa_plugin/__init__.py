"""SQL question/answer pairs over a schema given in the options: the generator writes a
question and a DuckDB query, a step runs the query (sqlqa_plugin.check), reviewers grade
clarity, sql_correctness and difficulty."""
from pydantic import BaseModel, ConfigDict, Field

from factory.recipes.base import RoleDef, TextRecipe
from factory.steps import ApplyRules, Decide, ExactDedup, Generate, MakeSeeds, Review
from roles import Adjudicator, JsonRole, Reviewer, Rubric
from roles.adjudicator import Verdict
from roles.base import json_tokens_bound
from roles.reviewer import Critique, Score1to10
from sqlqa_plugin.check import RunsQuery


class Pair(BaseModel):
    question: str = Field(min_length=5, max_length=200)
    sql: str = Field(min_length=6, max_length=300)


class PairWriter(JsonRole):
    output = Pair


class SqlReview(Rubric):
    clarity: Score1to10
    sql_correctness: Score1to10
    difficulty: Score1to10
    critique: str = Critique


class SqlReviewer(Reviewer):
    output = SqlReview


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_sql: str = Field("CREATE TABLE pets (name VARCHAR, kind VARCHAR, age INTEGER); "
                            "INSERT INTO pets VALUES ('Rex', 'dog', 3), ('Tom', 'cat', 5), ('Kiki', 'bird', 1);")
    topics: list[str] = ["how many pets there are", "the oldest pet", "the pets that are dogs"]


class SqlQA(TextRecipe):
    description = "SQL questions and DuckDB queries over a schema, each query run"
    Options = Options
    templates = "sqlqa_plugin:templates"
    roles = {
        "generator": RoleDef(lambda t, r: PairWriter(t), "sqlqa/generator@1", frozenset({"schema_sql", "topic"}),
                             {"temperature": 0.7, "max_tokens": json_tokens_bound(Pair)}),
        "reviewer": RoleDef(lambda t, r: SqlReviewer(t), "sqlqa/reviewer@1", frozenset({"schema_sql", "text"}),
                            {"temperature": 0.7, "max_tokens": json_tokens_bound(SqlReview)}),
        "adjudicator": RoleDef(lambda t, r: Adjudicator(t), "sqlqa/adjudicator@1",
                               frozenset({"schema_sql", "text", "reviews"}),
                               {"temperature": 0.2, "max_tokens": json_tokens_bound(Verdict)}),
    }
    decision = {"accept_mean": 3.0, "max_spread": 9.0, "reject_mean": 1.5}

    def make_seed(self, index):
        return {"schema_sql": self.options.schema_sql, "topic": self.options.topics[index % len(self.options.topics)]}

    def sample_of(self, seed, parsed):
        return f"{parsed.question}\n{parsed.sql}", parsed.model_dump()

    def rule_checks(self, seed, text, parsed=None):
        return {"sql_words": len(parsed.sql.split())} if parsed is not None else None

    def steps(self):
        return [MakeSeeds(), Generate(), ExactDedup(), RunsQuery(self.options.schema_sql), ApplyRules(), Review(),
                Decide()]
