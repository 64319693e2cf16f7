"""Cross-job and corpus dedup (curation.against_jobs, curation.against_corpus): a job's samples
are compared with texts outside the job (other jobs' accepted samples in the same database,
rows of JSONL or Parquet corpus files), so a second run of a recipe does not re-admit what
the first already made. A sample that duplicates an outside text is removed, never kept: the
outside text was there first and is never changed.

Methods, in order, each on the samples the earlier ones left: exact (content_hash: NFKC,
case-folded, whitespace collapsed), near (MinHash-LSH, exact shingle Jaccard >= near_threshold)
and, when `semantic` is on, MiniLM cosine >= semantic_threshold. Each removed sample records
its method and the outside text (job + sample id, or file + row), so explain can say why.

Other jobs are read through their accepted view: a text another job rejected or removed is
not "already made", and two jobs deduped against each other never both lose a shared text
(the second pass sees the first's copy already removed)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from factory.curation import cross_search, decontaminate, semantic_dedup
from factory.job_errors import JobError
from factory.keys import content_hash
from factory.spec import CorpusFile, CurationSpec
from stores.curation import accepted_samples, cached_benchmark_embeddings, cached_embeddings
from stores.stats import list_jobs

SNIPPET_CHARS = decontaminate.SNIPPET_CHARS


class AgainstError(JobError):
    """A curation.against_* entry that cannot be used (an unknown job, a corpus file missing,
    unreadable or without its field): one line, exit 2, raised before any work or write."""
    exit_code = 2  # bad input: nothing written (factory/cli.py's codes)


@dataclass
class Source:
    """The texts of one outside source; refs are sample ids (job) or row numbers (corpus)."""
    kind: str      # job | corpus
    against: str   # the job's fingerprint | the file's path
    name: str      # the job's name | the corpus name
    refs: list
    texts: list[str]
    hashes: list[str]
    file_sha256: str | None = None
    field: str | None = None
    file_rows: list[str] | None = None  # a corpus's every row, blank ones too (the embedding cache's rows)


@dataclass
class Found:
    rows: list[dict] = field(default_factory=list)            # outside_duplicates rows
    sample_vectors: dict = field(default_factory=dict)        # other jobs' samples embedded by this pass
    file_vectors: list[tuple] = field(default_factory=list)   # (file_sha256, field, vectors) of corpus files

    @property
    def removed(self) -> set[str]:
        return {r["sample_id"] for r in self.rows}


def _job_list(jobs: list[dict]) -> str:
    return ", ".join(f"{j['name']} ({j['job']})" for j in jobs) or "none"


def resolve_jobs(con, job: str, wanted: list[str]) -> list[tuple[str, str]]:
    """(fingerprint, name) of each job named in curation.against_jobs: a fingerprint, a unique
    prefix of one, or a name (every job of that name but the one being curated: the earlier
    runs of the same recipe, perhaps none yet)."""
    jobs = list_jobs(con)
    found: dict[str, str] = {}
    for w in wanted:
        exact = [j for j in jobs if j["job"] == w]
        named = [j for j in jobs if j["name"] == w]
        prefix = [j for j in jobs if j["job"].startswith(w)]
        if exact or (not named and len(prefix) == 1):
            picked = exact or prefix
            if picked[0]["job"] == job:
                raise AgainstError(f"curation.against_jobs: {w!r} is the job being curated; list other jobs "
                                   f"(this database's jobs: {_job_list(jobs)})")
        elif named:
            picked = [j for j in named if j["job"] != job]
        elif prefix:
            raise AgainstError(f"curation.against_jobs: {w!r} matches several jobs, use the fingerprint; "
                               f"this database's jobs: {_job_list(jobs)}")
        else:
            raise AgainstError(f"curation.against_jobs: no job {w!r} in this database; its jobs: {_job_list(jobs)}")
        for j in picked:
            found.setdefault(j["job"], j["name"])
    return list(found.items())


def read_corpus(c: CorpusFile) -> Source:
    """A corpus file's rows (blank texts left out: a row without the field matches nothing)."""
    try:
        field_name, texts = decontaminate.read_benchmark(c.path, c.field)
        sha = decontaminate.file_sha256(c.path)
    except decontaminate.BenchmarkError as err:  # the benchmark reader's one line, said of a corpus
        raise AgainstError("curation.against_corpus: " + re.sub(r"^benchmark", "corpus", str(err))) from None
    rows = [(i, t) for i, t in enumerate(texts) if t.strip()]
    return Source("corpus", c.path, c.name or Path(c.path).name, [i for i, _ in rows], [t for _, t in rows],
                  [content_hash(t) for _, t in rows], sha, field_name, texts)


def read_sources(con, job: str, config: CurationSpec) -> list[Source]:
    """Every outside source, read before the pass does any work (bad input fails first)."""
    corpora = [read_corpus(c) for c in config.against_corpus]
    jobs = []
    for fingerprint, name in resolve_jobs(con, job, config.against_jobs):
        rows = accepted_samples(con, fingerprint)
        jobs.append(Source("job", fingerprint, name, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]))
    return jobs + corpora


def describe(sources: list[Source]) -> str:
    """The summary's `against` line: what the pass compared with, and how many texts each."""
    return "; ".join(f"{s.kind} {s.name} ({s.against}): {len(s.texts)} texts" for s in sources) or "nothing"


def find(con, sources: list[Source], job: str, ids: list[str], texts: list[str], vectors: np.ndarray | None,
         config: CurationSpec) -> Found:
    """The job's samples (ids, texts, and their embeddings when semantic is on) that duplicate
    an outside text, first source and first row winning ties."""
    found = Found()
    flat = [(s, k) for s in sources for k in range(len(s.texts))]
    if not flat or not ids:
        return found
    outside_texts = [s.texts[k] for s, k in flat]
    match: dict[int, tuple[str, int, float]] = {}  # sample index -> (method, flat index, similarity)

    first: dict[str, int] = {}
    for f, (s, k) in enumerate(flat):
        first.setdefault(s.hashes[k], f)
    for i, text in enumerate(texts):
        f = first.get(content_hash(text))
        if f is not None:
            match[i] = ("exact", f, 1.0)

    rest = [i for i in range(len(ids)) if i not in match]
    for q, f, sim in cross_search.near_matches([texts[i] for i in rest], outside_texts, config.near_threshold,
                                               config.shingle_words, config.num_perm):
        match[rest[q]] = ("near", f, sim)

    rest = [i for i in range(len(ids)) if i not in match]
    if config.semantic and vectors is not None and rest:
        outside_vectors = _outside_vectors(con, sources, found)
        q, f, sims = cross_search.best_matches(vectors[rest], outside_vectors, config.semantic_threshold)
        for a, b, sim in zip(q.tolist(), f.tolist(), sims.tolist()):
            match[rest[a]] = ("semantic", b, sim)

    for i in sorted(match):
        method, f, sim = match[i]
        s, k = flat[f]
        found.rows.append({
            "sample_id": ids[i], "job": job, "method": method, "kind": s.kind, "against": s.against,
            "against_name": s.name, "other_sample_id": s.refs[k] if s.kind == "job" else None,
            "other_row": s.refs[k] if s.kind == "corpus" else None, "similarity": round(float(sim), 6),
            "snippet": s.texts[k][:SNIPPET_CHARS]})
    return found


def _outside_vectors(con, sources: list[Source], found: Found) -> np.ndarray:
    """Every outside text's MiniLM embedding, in flat order: other jobs' samples from the
    embeddings table, corpus rows from benchmark_embeddings (keyed by the file's SHA-256 and
    field, so a corpus is embedded once across passes and jobs); what is missing is embedded
    and handed back in `found` for write_curation to store."""
    model = semantic_dedup.MODEL_NAME
    parts = []
    for s in sources:
        if s.kind == "job":
            cached = cached_embeddings(con, model, s.refs)
            missing = [(r, t) for r, t in zip(s.refs, s.texts) if r not in cached and r not in found.sample_vectors]
            if missing:
                found.sample_vectors.update(zip([r for r, _ in missing], semantic_dedup.embed([t for _, t in missing])))
            parts.append(np.stack([cached.get(r, found.sample_vectors.get(r)) for r in s.refs]) if s.refs
                         else np.zeros((0, semantic_dedup.DIMENSIONS), np.float32))
            continue
        # The cache holds every row of the file (blank ones too), as semantic decontamination stores it.
        rows = s.file_rows
        known = {(sha, fld): v for sha, fld, v in found.file_vectors}
        vectors = known.get((s.file_sha256, s.field))
        if vectors is None:
            vectors = cached_benchmark_embeddings(con, s.file_sha256, s.field, model, len(rows))
        if vectors is None:
            vectors = semantic_dedup.embed(rows)
            found.file_vectors.append((s.file_sha256, s.field, vectors))
        parts.append(vectors[np.asarray(s.refs, dtype=np.int64)])
    return np.concatenate(parts).astype(np.float32)
