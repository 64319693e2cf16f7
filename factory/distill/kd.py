"""Logit knowledge distillation: the teacher (a causal LM sharing the student's tokenizer),
its top-k log-probabilities per position (cached, kd_cache.py), and the loss

    alpha * CE(data) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

on the answer tokens (the labels batches.py already masks). T^2 keeps the KL's gradient on the
scale of the CE's as T grows (Hinton et al. 2015).

The KL is over the teacher's top-k tokens plus one bucket holding the rest of the mass on
both sides: sum_i p_i log(p_i / q_i) + p_rest log(p_rest / q_rest). By the log-sum
inequality it is a lower bound of the full KL, equal to it when the teacher's mass outside
the top k is spread over those tokens in the student's proportions, and exact when k covers
the vocabulary (or k = V - 1). Measured numbers: docs/design-notes.md (Distillation).

On-policy distillation (GKD: the student samples, the teacher scores) is gkd.py: it needs
the teacher at every step, which this cache exists to avoid."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from factory.distill.kd_cache import TopKCache
from factory.distill.spec import KDSpec, StudentSpec, TeacherSpec
from factory.distill.student import StudentError, _load_hf_dir, _smollm2_fp32, check_hf_dir, smollm2_gguf_path

IGNORE = -100  # batches.py's label for "no loss here"
TEACHER_BATCH = 8  # rows per teacher forward pass


def _file_hash(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


_HASHES: dict[tuple, str] = {}


def teacher_files(spec: TeacherSpec) -> list[Path]:
    if spec.kind == "smollm2-gguf":
        return [smollm2_gguf_path()]
    path = Path(spec.path)
    check_hf_dir(path, "teacher.path")
    return sorted([path / "config.json", *path.glob("*.safetensors"), *path.glob("pytorch_model*.bin")])


def teacher_hash(spec: TeacherSpec) -> str:
    """sha256 of the teacher's weight files (SmolLM2's GGUF: 101 MB, ~0.3 s; memoized by
    path, size and mtime): a retrained teacher in the same directory gets new cache keys."""
    files = teacher_files(spec)
    stamp = tuple((str(p), os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in files)
    if stamp not in _HASHES:
        _HASHES[stamp] = _file_hash(files)
    return _HASHES[stamp]


def _tokenizer_of(kind: str, path: str | None, cache_dir: Path):
    from transformers import AutoTokenizer

    from factory.distill.student import smollm2_tokenizer

    if kind in ("tiny", "smollm2-gguf"):
        return smollm2_tokenizer(cache_dir), "SmolLM2 (from the GGUF)"
    try:
        return AutoTokenizer.from_pretrained(path), str(Path(path).resolve())
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StudentError(f"{path}: no usable tokenizer ({' '.join(str(err).split())[:200]})") from None


def check_same_tokenizer(student: StudentSpec, teacher: TeacherSpec, cache_dir: Path,
                         field: str = "training.kd") -> None:
    """Before anything is written: the teacher's top-k ids (kd) or logits (gkd) index the
    student's vocabulary, so both must be one tokenizer (same token -> id map)."""
    if teacher.kind == "hf":
        check_hf_dir(Path(teacher.path), f"{field}.teacher.path")
    s_tok, s_name = _tokenizer_of(student.kind, student.path, cache_dir)
    t_tok, t_name = _tokenizer_of(teacher.kind, teacher.path, cache_dir)
    if s_tok.get_vocab() != t_tok.get_vocab():
        raise StudentError(f"{field}.teacher: the teacher's tokenizer {t_name} ({len(t_tok)} tokens) differs "
                           f"from the student's tokenizer {s_name} ({len(s_tok)} tokens); {field.split('.')[-1].upper()} "
                           "needs one tokenizer")


@dataclass
class Teacher:
    """A teacher whose weights load only when a row misses the cache (a resumed run or a
    second student with every row cached never loads them)."""

    spec: TeacherSpec
    model_cache_dir: Path  # where the SmolLM2 fp32 conversion is cached (run.cache_dir())
    cache: TopKCache
    device: str = "cpu"
    forward_passes: int = 0
    rows_scored: int = 0
    _model: object = field(default=None, repr=False)

    @property
    def identity(self) -> str:
        return teacher_hash(self.spec)

    def model(self):
        if self._model is None:
            if self.spec.kind == "smollm2-gguf":
                model = _smollm2_fp32(Path(self.model_cache_dir))
            else:
                model, _ = _load_hf_dir(Path(self.spec.path), "teacher.path")
            self._model = model.to(self.device).eval()
        return self._model

    def close(self) -> None:
        self._model = None


def _score(teacher: Teacher, rows: list[list[int]], k: int, temperature: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Top-k of log_softmax(teacher logits / T) at every position but the last (position i
    predicts token i + 1), one forward pass per TEACHER_BATCH rows, right-padded."""
    if not rows:
        return []  # every row cached: the weights are not loaded at all
    model = teacher.model()
    out = []
    for start in range(0, len(rows), TEACHER_BATCH):
        chunk = rows[start:start + TEACHER_BATCH]
        width = max(len(r) for r in chunk)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in chunk], device=teacher.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in chunk], device=teacher.device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        teacher.forward_passes += 1
        teacher.rows_scored += len(chunk)
        for row, r in zip(logits, chunk):
            logp = F.log_softmax(row[:len(r) - 1] / temperature, dim=-1)
            values, indices = logp.topk(min(k, logp.shape[-1]), dim=-1)
            out.append((indices.cpu(), values.cpu()))
    return out


def teacher_targets(teacher: Teacher, rows: list[list[int]], kd: KDSpec) -> list[dict]:
    """Per row, tensors aligned to its tokens: kd_ids / kd_logp [n, k] hold the teacher's
    top-k for predicting token t (from position t - 1), kd_mask [n] is False at t = 0 (no
    position predicts a row's first token; in a packed block the previous row's last token
    does, and that position gets the CE only)."""
    keys = [teacher.cache.key(teacher.identity, r, kd.top_k, kd.temperature) for r in rows]
    found = [teacher.cache.get(teacher.identity, key) for key in keys]
    missing = [i for i, f in enumerate(found) if f is None]
    for i, scored in zip(missing, _score(teacher, [rows[i] for i in missing], kd.top_k, kd.temperature)):
        teacher.cache.put(teacher.identity, keys[i], *scored)
        found[i] = scored
    out = []
    for r, (ids, logp) in zip(rows, found):
        k = ids.shape[1]
        out.append({"kd_ids": torch.cat([torch.zeros(1, k, dtype=torch.long), ids.long()]),
                    "kd_logp": torch.cat([torch.zeros(1, k), logp.float()]),
                    "kd_mask": torch.tensor([False] + [True] * (len(r) - 1))})
    return out


def kd_loss(logits: torch.Tensor, labels: torch.Tensor, kd_ids: torch.Tensor, kd_logp: torch.Tensor,
            kd_mask: torch.Tensor, alpha: float, temperature: float) -> tuple[torch.Tensor, float, float]:
    """(loss, ce, kl) of a batch. logits [B, L, V]; labels [B, L] (IGNORE off the answer);
    kd_* aligned to tokens as teacher_targets makes them. CE is the mean over labelled
    tokens (as the SFT loss), KL the mean over labelled tokens that have a teacher target."""
    shifted = logits[:, :-1]
    y = labels[:, 1:]
    ce_at = y != IGNORE
    ce_logits = shifted[ce_at]
    ce = F.cross_entropy(_at_least_fp32(ce_logits), y[ce_at], reduction="sum") / max(int(ce_at.sum()), 1)

    kl_at = ce_at & kd_mask[:, 1:]
    s = _at_least_fp32(shifted[kl_at])  # [N, V]: only the answer positions (a full [B, L, V] copy is ~400 MB)
    t_logp = kd_logp[:, 1:][kl_at]  # [N, k]
    t_ids = kd_ids[:, 1:][kl_at]
    s_logq = F.log_softmax(s / temperature, dim=-1).gather(-1, t_ids)  # student's log q at the teacher's top k
    p = t_logp.exp()
    p_rest = (1 - p.sum(-1)).clamp(min=0)
    q_rest_log = torch.log1p(-torch.exp(torch.logsumexp(s_logq, -1)).clamp(max=1 - 1e-7))
    per_token = (p * (t_logp - s_logq)).sum(-1) + torch.xlogy(p_rest, p_rest) - p_rest * q_rest_log
    kl = per_token.sum() / max(int(kl_at.sum()), 1)
    loss = alpha * ce + (1 - alpha) * temperature ** 2 * kl
    return loss, float(ce.detach()), float(kl.detach())


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    # bf16/fp16 logits are upcast for the softmax; fp64 (the hand-computed test) stays fp64.
    return t if t.dtype in (torch.float32, torch.float64) else t.float()
