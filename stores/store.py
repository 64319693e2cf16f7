"""The DuckDB store. The driver process is its only writer; workers return results.

A batch's rows and its done-marks commit in one transaction, so a kill -9 leaves either
all of a batch or none of it. The completions cache commits on its own, as soon as
completions arrive, so a rerun after a crash pays for no completion twice.
"""
from __future__ import annotations

import errno
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from stores.connection import StoreError, open_database
from stores.handle import HoldsConnection
from stores.insert import insert_rows
from stores.migrations import migrate
from stores.signals import cached_expected_scores, cached_likelihoods, put_likelihoods
from stores.stats import existing_job
from stores.summaries import add_batch
from stores.tokens import role_tokens
from stores.transaction import transaction

TABLES_WRITTEN_PER_BATCH = ("seeds", "samples", "reviews", "verdicts", "drops", "solutions", "verifications", "signals")


@dataclass
class BatchRows:
    batch_id: str
    job: str
    seed_indices: list[int]
    rows: dict[str, list[dict]] = field(default_factory=lambda: {t: [] for t in TABLES_WRITTEN_PER_BATCH})

    def add(self, table: str, row: dict) -> None:
        self.rows[table].append(row)


class Store(HoldsConnection):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.con = open_database(self.path)
        migrate(self.con)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # jobs
    def register_job(self, fingerprint: str, name: str, recipe: str, spec: dict, decision_rule: dict,
                     num_samples: int, curation: dict | None = None) -> None:
        """curation: the YAML's curation settings, kept with the job so that `factory curate
        NAME` uses them; a rerun with other settings replaces them, None keeps what is stored."""
        self.con.execute(
            """INSERT INTO jobs (fingerprint, name, recipe, spec, decision_rule, num_samples, curation)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name,
                 num_samples = greatest(jobs.num_samples, excluded.num_samples),
                 curation = coalesce(excluded.curation, jobs.curation)""",
            [fingerprint, name, recipe, json.dumps(spec, sort_keys=True), json.dumps(decision_rule, sort_keys=True),
             num_samples, None if curation is None else json.dumps(curation, sort_keys=True)],
        )

    def existing_job(self, fingerprints: list[str]) -> str | None:
        """The first of these fingerprints that names a job in this database."""
        return existing_job(self.con, fingerprints)

    def done_indices(self, job: str) -> set[int]:
        rows = self.con.execute("SELECT seed_index FROM done_seeds WHERE job = ?", [job]).fetchall()
        return {r[0] for r in rows}

    def tokens_spent(self, job: str) -> dict[str, int]:
        """Prompt + completion tokens of the job's committed rows, per role (roles that spent any)."""
        spent = {role: prompt + completion for role, _, prompt, completion, _ in role_tokens(self.con, job)}
        return {role: n for role, n in spent.items() if n}

    # completions cache
    def cached(self, keys: list[str]) -> dict[str, dict]:
        if not keys:
            return {}
        rows = self.con.execute(
            """SELECT request_key, text, prompt_tokens, completion_tokens, seconds, finish_reason
               FROM completions WHERE request_key IN (SELECT unnest(?))""",
            [list(keys)],
        ).fetchall()
        names = ("key", "text", "prompt_tokens", "completion_tokens", "seconds", "finish_reason")
        return {r[0]: dict(zip(names, r)) for r in rows}

    def put_completions(self, rows: list[dict]) -> None:
        with self._disk_full_named(), transaction(self.con):
            insert_rows(self.con, "completions", rows, "ON CONFLICT (request_key) DO NOTHING")

    # likelihood cache (stores/signals.py: its own transaction, as the completions cache)
    def cached_likelihoods(self, keys: list[str]) -> dict[str, tuple[float, int, float]]:
        """score key -> (mean log-probability, tokens scored, seconds it took)."""
        return cached_likelihoods(self.con, keys)

    def put_likelihoods(self, rows: list[dict]) -> None:
        """rows: score_key, model (identity dict), mean_logprob, n_tokens, seconds."""
        put_likelihoods(self.con, rows)

    # expected review scores (signals rows, stores/signals.py)
    def cached_expected(self, role: str, keys: list[str]) -> dict[str, dict]:
        """request key -> {axis: {value: probability}} from earlier expected-scores signals rows
        (`role`: their role, steps/review.py)."""
        return cached_expected_scores(self.con, role, keys)

    # exact dedup
    def samples_by_hash(self, job: str, hashes: list[str]) -> dict[str, str]:
        if not hashes:
            return {}
        rows = self.con.execute(
            """SELECT content_hash, min(sample_id ORDER BY seed_index) FROM samples
               WHERE job = ? AND duplicate_of IS NULL AND content_hash IN (SELECT unnest(?))
               GROUP BY content_hash""",
            [job, list(hashes)],
        ).fetchall()
        return dict(rows)

    # the batch
    def write_batch(self, batch: BatchRows) -> None:
        with self._disk_full_named(), transaction(self.con):
            for table in TABLES_WRITTEN_PER_BATCH:
                insert_rows(self.con, table, batch.rows[table])
            insert_rows(self.con, "done_seeds",
                    [{"job": batch.job, "seed_index": i, "batch_id": batch.batch_id} for i in batch.seed_indices])
            add_batch(self.con, batch.job, batch.rows)  # the job's stats summary, in the batch's transaction

    @contextmanager
    def _disk_full_named(self):
        """A write that hit a full disk is one line naming the file DuckDB could not write
        (its .wal): the transaction rolled back (all or none), so the database stays readable
        and a rerun after space is freed resumes at the first uncommitted batch."""
        try:
            yield
        except (duckdb.Error, OSError) as err:
            if "No space left on device" not in str(err) and getattr(err, "errno", None) != errno.ENOSPC:
                raise
            named = re.search(r'"([^"]+)"', str(err))  # 'Could not write file "/x/f.duckdb.wal": No space ...'
            raise StoreError(f"no space left on device writing {named.group(1) if named else self.path}: "
                             "free space and rerun to resume") from err
