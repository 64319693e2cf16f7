"""Content-addressed keys: ids that survive restarts, and the completions cache key."""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata


def digest(*parts, length: int = 16) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def request_seed(job_seed: int, seed_index: int, role: str, slot: int = 0) -> int:
    # 31 bits: llama.cpp and most servers take a signed 32-bit seed.
    return int(digest(job_seed, seed_index, role, slot), 16) & 0x7FFFFFFF


def request_key(model: dict, messages, sampling: dict, seed: int, json_schema: dict | None,
                role: str, role_version: int, template_sha256: str) -> str:
    """Same model file, prompt, sampling, seed, schema and role version -> same completion."""
    return digest(model, messages, sampling, seed, json_schema, role, role_version, template_sha256, length=32)


def sample_id(job: str, seed_index: int) -> str:
    return digest("sample", job, seed_index)


def seed_id(job: str, seed_index: int) -> str:
    return digest("seed", job, seed_index)


_SPACE = re.compile(r"\s+")


def content_hash(text: str) -> str:
    """Exact-dedup key: NFKC, case-folded, whitespace collapsed."""
    normalized = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.sha256(normalized.encode()).hexdigest()[:32]
