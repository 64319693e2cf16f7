"""The teacher's top-k log-probabilities, one file per (teacher, row tokens, k, T), so that a
second student, another mixture holding the same row, another seed, or a resumed run reads
them instead of running the teacher again.

Files beside the store (<db>.kd-cache/<teacher>/<key[:2]>/<key>.pt), not a DuckDB table:
at k = 20 a position costs 160 bytes (int32 id + fp32 log-prob per kept token), so 2,000
rows of ~300 tokens are ~96 MB, and training runs with the database closed (run.py never
holds DuckDB's single writer lock for minutes; `factory runs` reads meanwhile). Each file
is written to a temp name and renamed: a killed writer leaves no half file under a key,
and two students writing the same key write the same bytes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from factory.keys import digest


def cache_root_for(db: str | Path) -> Path:
    return Path(f"{db}.kd-cache")


class TopKCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(teacher: str, input_ids: list[int], k: int, temperature: float) -> str:
        # The row as its tokens: the same text under the (shared) tokenizer cut at the same
        # length; temperature as repr so 2 and 2.0 are one key.
        return digest("kd-topk", teacher, input_ids, k, repr(float(temperature)), length=32)

    def _path(self, teacher: str, key: str) -> Path:
        return self.root / teacher / key[:2] / f"{key}.pt"

    def get(self, teacher: str, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self._path(teacher, key)
        try:
            saved = torch.load(path, weights_only=True)
        except FileNotFoundError:
            self.misses += 1
            return None
        self.hits += 1
        return saved["ids"], saved["logp"]

    def put(self, teacher: str, key: str, ids: torch.Tensor, logp: torch.Tensor) -> None:
        path = self._path(teacher, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save({"ids": ids.to(torch.int32).contiguous(), "logp": logp.float().contiguous()}, f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
