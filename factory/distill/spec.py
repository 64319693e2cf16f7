"""The distillation spec: which job's solutions, mixed how, into which student, trained and
evaluated how. Same rules as jobs: unknown fields are errors, and an invalid file is one
line naming the field and what is allowed (exit 2, nothing written)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from factory.keys import digest
from factory.spec import JobError, Strict, one_line_error, read_yaml

Part = Literal["long", "short", "large_long", "large_short", "story"]

# The paper's mixes ("Small Models Struggle to Learn from Strong Reasoners", Table 2):
# Mix-Long = 0.2 long CoT + 0.8 short CoT; Mix-Large = 0.2 large teacher + 0.8 small teacher.
BUILTIN_MIXTURES = ("long", "short", "mix-long", "mix-large")


class SourceSpec(Strict):
    job: str = Field(description="the math (or tinystories) job in db: its name or fingerprint")
    large_job: str | None = Field(None, description="a job of the same problems answered by a larger teacher "
                                  "(its short solutions are the 'large' part of mix-large)")
    use: Literal["accepted", "all"] = Field(
        "accepted", description="accepted: the curated accepted view (verified, not a duplicate, not "
        "contaminated); all: every problem of the job")
    require: Literal["correct", "answered"] = Field(
        "correct", description="correct: only solutions whose answer matches the reference; answered: any "
        "solution with a final answer (for weak teachers: teaches format, not correctness)")


class MixtureSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    parts: dict[Part, float] = Field(min_length=1, description="share of the rows from each part; sums to 1")

    @model_validator(mode="after")
    def _shares(self) -> "MixtureSpec":
        if any(s <= 0 for s in self.parts.values()):
            raise ValueError("every share must be > 0")
        if abs(sum(self.parts.values()) - 1.0) > 1e-6:
            raise ValueError(f"shares must sum to 1 (they sum to {sum(self.parts.values()):g})")
        return self


MixtureName = Literal["long", "short", "mix-long", "mix-large", "all"]
# A name or a {name, parts} mapping; the discriminator picks one branch so that an error
# names what is wrong with the mapping instead of also listing the allowed names.
MixtureEntry = Annotated[
    Union[Annotated[MixtureName, Tag("name")], Annotated[MixtureSpec, Tag("mixture")]],
    Discriminator(lambda v: "name" if isinstance(v, str) else "mixture"),
]


class TinyStudentSpec(Strict):
    """A Llama-architecture student built from a config with SmolLM2's tokenizer (49,152
    tokens): the defaults make 3.3 M parameters (3.1 M of them the tied embedding), one
    step of 8 x 256 tokens takes ~0.85 s on 2 cores."""

    hidden_size: int = Field(64, ge=8, le=4096)
    layers: int = Field(2, ge=1, le=64)
    heads: int = Field(4, ge=1, le=64)
    intermediate_size: int = Field(256, ge=8, le=16384)
    max_positions: int = Field(512, ge=32, le=32768)

    @model_validator(mode="after")
    def _divisible(self) -> "TinyStudentSpec":
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by heads {self.heads}")
        return self


class TokenizerSpec(Strict):
    """The tiny student's tokenizer. smollm2 (default): SmolLM2's 49,152 tokens, needed by
    KD/GKD (the teacher's tokenizer must match). trained: BPE trained on the distillation's
    training rows (the union of every mixture's, never evaluation items), digits single tokens
    (factory/distill/tokenizer.py): a 512-wide output layer instead of 49,152."""

    kind: Literal["smollm2", "trained"] = Field("smollm2", description="smollm2: SmolLM2's tokenizer; trained: "
                                                "BPE trained on the training rows")
    vocab_size: int | None = Field(None, ge=8, le=1_000_000, description="trained: tokens, special ones included "
                                   "(default 512); at least the rows' distinct characters + digits + 2, at most "
                                   "what the rows can fill")

    @model_validator(mode="before")
    @classmethod
    def _default_size(cls, data):
        if isinstance(data, dict) and data.get("kind") == "trained" and data.get("vocab_size") is None:
            data = {**data, "vocab_size": 512}  # ~410 distinct word/digit tokens in 3,000 problems (issue 22)
        return data

    @model_validator(mode="after")
    def _size_only_when_trained(self) -> "TokenizerSpec":
        if self.kind != "trained" and self.vocab_size is not None:
            raise ValueError(f"vocab_size is read only when kind is 'trained' (kind is {self.kind!r})")
        return self


# A student dumped for an id leaves the tokenizer out at its default: a spec that names no
# tokenizer keeps the id it has without this field, so its stored runs are found, not retrained.
DEFAULT_TOKENIZER = {"kind": "smollm2", "vocab_size": None}


class StudentSpec(Strict):
    kind: Literal["tiny", "smollm2-gguf", "hf"] = Field(
        "tiny", description="tiny: built from a config (CPU default); smollm2-gguf: SmolLM2-135M-Instruct "
        "from the packaged GGUF (dequantized to fp32); hf: a local Hugging Face checkpoint directory")
    path: str | None = Field(None, description="hf: the checkpoint directory (config.json + weights)")
    tiny: TinyStudentSpec = TinyStudentSpec()
    init_seed: int = Field(0, ge=0, description="seed of the tiny student's initial weights")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when torch sees a GPU, else cpu")
    tokenizer: TokenizerSpec = Field(TokenizerSpec(), description="tiny: smollm2 (default) or a tokenizer trained "
                                     "on the rows ({kind: trained, vocab_size: 512})")

    @model_validator(mode="after")
    def _path(self) -> "StudentSpec":
        if self.kind == "hf" and not self.path:
            raise ValueError("kind 'hf' needs path (a Hugging Face checkpoint directory)")
        if self.kind != "hf" and self.path:
            raise ValueError(f"path is read only when kind is 'hf' (kind is {self.kind!r})")
        if self.trained_tokenizer and self.kind != "tiny":
            raise ValueError(f"tokenizer kind 'trained' is for kind 'tiny' (a {self.kind} student's embedding "
                             "is sized for its own tokenizer)")
        return self

    @property
    def trained_tokenizer(self) -> bool:
        return self.tokenizer.kind == "trained"

    def identity(self) -> dict:
        """The student as JSON for ids: the tokenizer left out at its default (smollm2)."""
        out = self.model_dump(mode="json")
        if out.get("tokenizer") == DEFAULT_TOKENIZER:
            out.pop("tokenizer")
        return out


class LoraSpec(Strict):
    r: int = Field(8, ge=1, le=1024)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class TeacherSpec(Strict):
    kind: Literal["smollm2-gguf", "hf"] = Field(
        "smollm2-gguf", description="smollm2-gguf: SmolLM2-135M-Instruct from the packaged GGUF (dequantized to "
        "fp32, as for students); hf: a local Hugging Face checkpoint directory. Must share the student's tokenizer")
    path: str | None = Field(None, description="hf: the checkpoint directory (config.json + weights + tokenizer)")

    @model_validator(mode="after")
    def _path(self) -> "TeacherSpec":
        if self.kind == "hf" and not self.path:
            raise ValueError("kind 'hf' needs path (a Hugging Face checkpoint directory)")
        if self.kind != "hf" and self.path:
            raise ValueError(f"path is read only when kind is 'hf' (kind is {self.kind!r})")
        return self


class KDSpec(Strict):
    """Logit distillation: loss = alpha * CE + (1 - alpha) * T^2 * KL(teacher_T || student_T) on
    the answer tokens, the KL over the teacher's top_k tokens plus one bucket for the rest."""

    teacher: TeacherSpec = TeacherSpec()
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the cross-entropy on the data's tokens")
    temperature: float = Field(1.0, gt=0, le=20, description="softens both distributions in the KL term (> 1 moves "
                               "teacher mass out of the top k: docs/design-notes.md)")
    top_k: int = Field(20, ge=1, le=1024, description="teacher log-probabilities kept (cached) per position")


class GKDSpec(Strict):
    """On-policy distillation (GKD): on a share of the micro-batches the student writes the
    continuations of the rows' prompts and the teacher scores them; the loss is the generalized
    Jensen-Shannon divergence between the two next-token distributions (factory/distill/gkd.py)."""

    teacher: TeacherSpec = TeacherSpec()
    beta: float = Field(0.5, ge=0, le=1, description="JSD interpolation: 0 = KL(teacher || student), 1 = "
                        "KL(student || teacher), between = generalized JSD with mixture beta*teacher + (1-beta)*student")
    on_policy: float = Field(0.5, ge=0, le=1, description="share of micro-batches the student writes (GKD's "
                             "lambda); the rest train on the rows' own text, scored by the teacher")
    temperature: float = Field(1.0, gt=0, le=20, description="the student's sampling temperature and the "
                               "softening of both distributions in the divergence")
    max_new_tokens: int = Field(64, ge=1, le=4096, description="tokens the student writes per on-policy row")
    prompt_tokens: int = Field(16, ge=1, le=4096, description="rows without a prompt (stories): the student "
                               "continues the row's first prompt_tokens tokens")


# Fields whose default must not enter ids or keys: a spec that leaves them at the default
# keeps the run ids, resume keys and fingerprints it has without them (runs on disk resume).
TRAINING_DEFAULTS = {"method": "sft", "kd": None, "gkd": None, "precision": "fp32", "grad_accumulation": 1,
                     "group_by_length": False}
# How a run is executed, not what it computes: never in ids or keys. workers N splits every
# batch across N DDP processes whose averaged gradients are the one process's (same global
# batch), so a run keeps its id and checkpoints whatever N is (tests/distill/test_ray_train.py).
TRAINING_EXECUTION = {"workers"}


class TrainingSpec(Strict):
    method: Literal["sft", "kd", "gkd"] = Field("sft", description="sft: cross-entropy on the rows' answers; kd: "
                                                "+ KL to a teacher's distribution (training.kd); gkd: on-policy "
                                                "distillation, the student's samples scored by a teacher (training.gkd)")
    kd: KDSpec | None = Field(None, description="method kd: teacher, alpha, temperature, top_k")
    gkd: GKDSpec | None = Field(None, description="method gkd: teacher, beta, on_policy, temperature, max_new_tokens")
    epochs: int = Field(3, ge=1, le=1000)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(8, ge=1, le=4096)
    learning_rate: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    max_length: int = Field(256, ge=16, le=32768, description="tokens per row (prompt + answer); longer rows are cut")
    packing: bool = Field(False, description="concatenate rows into max_length blocks (loss masks kept)")
    group_by_length: bool | Literal["buckets"] = Field(
        False, description="unpacked rows, so that a mixture of long and short rows is not padded to its long rows "
        "in every batch. buckets: each batch from one power-of-two length class (17-32 tokens, 33-64, ...), rows "
        "random within it; true: sorted by length within windows of 50 batches (near-identical rows per batch: "
        "it learned worse, docs/experiments.md row b.5). Batches are then shuffled")
    checkpoint_every: int = Field(25, ge=1, description="optimizer steps between checkpoints")
    seed: int = Field(0, ge=0, description="data order and dropout")
    lora: LoraSpec | None = Field(None, description="train LoRA adapters (peft) instead of every weight")
    threads: int | None = Field(None, ge=1, le=512, description="torch CPU threads (default: torch's)")
    workers: int = Field(1, ge=1, le=1024, description="> 1: Ray Train DDP processes (gloo on CPU, nccl on GPU) on "
                         "the Ray cluster (RAY_ADDRESS or local Ray), each on its share of every batch_size batch")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast forward passes (weights and "
                                               "optimizer stay fp32); fp32 is the CPU default")
    grad_accumulation: int = Field(1, ge=1, le=1024, description="micro-batches of batch_size per optimizer step "
                                   "(an effective batch of grad_accumulation x batch_size rows)")

    @model_validator(mode="before")
    @classmethod
    def _kd_defaults(cls, data):
        if isinstance(data, dict) and data.get("method") in ("kd", "gkd") and data.get(data["method"]) is None:
            data = {**data, data["method"]: {}}
        return data

    @model_validator(mode="after")
    def _kd_only_for_kd(self) -> "TrainingSpec":
        if self.kd is not None and self.method != "kd":
            raise ValueError(f"kd is read only when method is 'kd' (method is {self.method!r})")
        if self.gkd is not None and self.method != "gkd":
            raise ValueError(f"gkd is read only when method is 'gkd' (method is {self.method!r})")
        if self.method == "gkd" and self.workers > 1:
            raise ValueError("method gkd trains in one process (workers: 1): the teacher scores the student's "
                             "samples at every step, and that is not built for Ray Train workers")
        if self.group_by_length and self.packing:
            raise ValueError("group_by_length is for unpacked rows: packed blocks all have max_length tokens")
        if self.workers > self.batch_size:
            raise ValueError(f"workers ({self.workers}) must be <= batch_size ({self.batch_size}): "
                             "each worker takes a share of every batch")
        return self

    def identity(self, exclude: set[str] = frozenset()) -> dict:
        """The settings as JSON, without method/kd/gkd/precision/grad_accumulation/group_by_length at their default
        and never with workers (TRAINING_EXECUTION)."""
        out = self.model_dump(mode="json", exclude=set(exclude) | TRAINING_EXECUTION)
        for key, default in TRAINING_DEFAULTS.items():
            if out.get(key, default) == default:
                out.pop(key, None)
        return out


class GradingSpec(Strict):
    """Stories: how continuations are graded (the source job's reviewer rubric and model)."""

    prompt_words: int = Field(12, ge=1, le=200, description="words of a held-out story given as the prompt")


class EvaluationSpec(Strict):
    source: Literal["held_out", "builtin", "file"] = Field(
        "held_out", description="held_out: problems (or stories) of the source job that no training row saw, "
        "chosen by seed; builtin: fresh problems of the built-in generator (exact answers); file: a GSM8K-format JSONL")
    problems: int = Field(50, ge=1, le=100_000, description="evaluation items")
    seed: int = Field(1000, ge=0, description="held_out: which items are held out; builtin: generator seed")
    max_steps: int = Field(2, ge=1, le=6, description="builtin: arithmetic steps per problem")
    file: str | None = Field(None, description="file: GSM8K-format JSONL (question, answer ending in '#### n')")
    max_new_tokens: int = Field(160, ge=1, le=32768)
    best_of: int = Field(1, ge=1, le=64, description="> 1: sample n answers, majority vote")
    temperature: float = Field(0.7, gt=0, le=2, description="best_of sampling temperature (best_of 1 is greedy)")
    overlap_ngram: int = Field(13, ge=3, le=50, description="an eval item sharing a word n-gram this long "
                               "with a training row is removed (and counted)")
    grading: GradingSpec = GradingSpec()

    @model_validator(mode="after")
    def _file(self) -> "EvaluationSpec":
        if self.source == "file" and not self.file:
            raise ValueError("source 'file' needs file")
        if self.source != "file" and self.file:
            raise ValueError("file is read only when source is 'file'")
        return self


class DistillSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    task: Literal["math", "stories"] = Field("math", description="math: long/short CoT mixtures, verifier "
                                              "accuracy; stories: a tiny LM on accepted stories, reviewer grades")
    db: str = Field("factory.duckdb", description="the DuckDB file with the source job; runs are recorded there")
    source: SourceSpec
    mixtures: list[MixtureEntry] | None = Field(
        None, min_length=1, description="built-in names or {name, parts}; default: long, short, mix-long "
        "(+ mix-large when source.large_job is set); stories: all")
    mix_long_ratio: float = Field(0.2, gt=0, lt=1, description="long share of mix-long")
    mix_large_ratio: float = Field(0.2, gt=0, lt=1, description="large-teacher share of mix-large")
    rows: int | Literal["max"] = Field(
        "max", description="training rows per mixture, the same for every mixture so that they compare; "
        "max: the most that every mixture can fill")
    student: StudentSpec = StudentSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    output_dir: str = Field("runs", description="checkpoints go to output_dir/<run id>/")
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=1, description="train every mixture once per seed (each replaces training.seed and "
        "student.init_seed: data order and initial weights); the rows and evaluation items stay the same, so "
        "the runs compare item by item")
    parallel_runs: int = Field(1, ge=1, le=64, description="runs (mixtures x seeds) trained at once, one process "
                               "each with training.threads torch threads: on a few cores, tiny students train "
                               "faster side by side than on more threads each; math sft on CPU only")

    @model_validator(mode="after")
    def _consistent(self) -> "DistillSpec":
        if self.student.kind == "tiny":
            longest = max(self.training.max_length, self.evaluation.max_new_tokens)
            if self.student.tiny.max_positions < longest:
                raise ValueError(f"student.tiny.max_positions ({self.student.tiny.max_positions}) must cover "
                                 f"training.max_length and evaluation.max_new_tokens ({longest})")
        if self.student.trained_tokenizer and self.training.method in ("kd", "gkd"):
            raise ValueError(f"student.tokenizer: a trained tokenizer cannot train with method "
                             f"{self.training.method} (the teacher scores the student's tokens, so both need one "
                             "tokenizer); use tokenizer kind smollm2 or method sft")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be unique (got {self.seeds})")
        if self.parallel_runs > 1 and (self.task != "math" or self.training.method != "sft"
                                       or self.training.workers > 1 or self.student.device == "cuda"):
            raise ValueError(f"parallel_runs: {self.parallel_runs} trains math sft runs on CPU in separate "
                             "processes; stories, kd, gkd, training.workers > 1 and student.device cuda train one "
                             "run at a time (parallel_runs: 1)")
        if isinstance(self.rows, int) and self.rows < 1:
            raise ValueError("rows must be >= 1 or 'max'")
        names = [m if isinstance(m, str) else m.name for m in self.mixtures or []]
        if len(set(names)) != len(names):
            raise ValueError("mixture names must be unique")
        uses_large = any(
            (m == "mix-large") if isinstance(m, str) else any(p.startswith("large_") for p in m.parts)
            for m in self.mixtures or [])
        if uses_large and not self.source.large_job:
            raise ValueError("mixtures: mix-large (or a large_* part) needs source.large_job")
        if self.task == "stories":
            if any(n != "all" for n in names):
                raise ValueError("mixtures: a stories distillation has one mixture, 'all' (the accepted stories)")
            if self.evaluation.source != "held_out":
                raise ValueError("evaluation.source: stories are evaluated on held-out stories ('held_out')")
        elif any(isinstance(m, MixtureSpec) and "story" in m.parts for m in self.mixtures or []):
            raise ValueError("mixtures: part 'story' is for stories; math parts: long, short, large_long, large_short")
        elif "all" in names:
            raise ValueError("mixtures: 'all' is the stories mixture; math mixtures: "
                             f"{', '.join(BUILTIN_MIXTURES)} or {{name, parts}}")
        return self

    def mixture_specs(self) -> list[MixtureSpec]:
        """Every mixture with its parts spelled out."""
        if self.task == "stories":
            return [MixtureSpec(name="all", parts={"story": 1.0})]
        builtin = {
            "long": {"long": 1.0},
            "short": {"short": 1.0},
            "mix-long": {"long": self.mix_long_ratio, "short": round(1 - self.mix_long_ratio, 6)},
            "mix-large": {"large_short": self.mix_large_ratio, "short": round(1 - self.mix_large_ratio, 6)},
        }
        chosen = self.mixtures or ["long", "short", "mix-long"] + (["mix-large"] if self.source.large_job else [])
        return [MixtureSpec(name=m, parts=builtin[m]) if isinstance(m, str) else m for m in chosen]

    def run_settings(self) -> dict:
        """What, besides the data, decides a run's result: part of its id. Training fields at
        their default (TRAINING_DEFAULTS) are left out, so adding a field changes no id."""
        out = self.model_dump(mode="json", include={"task", "evaluation"})
        return {**out, "student": self.student.identity(), "training": self.training.identity()}

    def with_seed(self, seed: int) -> "DistillSpec":
        """The spec one seed of `seeds` trains with: its data order and initial weights."""
        return self.model_copy(update={"training": self.training.model_copy(update={"seed": seed}),
                                       "student": self.student.model_copy(update={"init_seed": seed})})

    @property
    def fingerprint(self) -> str:
        # parallel_runs decides how fast, not what: out of the fingerprint like db and output_dir
        out = self.model_dump(mode="json", exclude={"name", "db", "output_dir", "seeds", "training", "parallel_runs"})
        out["training"] = self.training.identity()
        out["student"] = self.student.identity()
        if self.seeds is not None:
            out["seeds"] = self.seeds
        return digest(out)


def load_distill(path: str | Path) -> DistillSpec:
    data = read_yaml(path, "distill")
    if not isinstance(data, dict):
        raise JobError(f"{path}: (top level): expected a mapping of distill fields")
    try:
        return DistillSpec.model_validate(data)
    except ValidationError as err:
        raise JobError(one_line_error(str(path), err, DistillSpec)) from None
