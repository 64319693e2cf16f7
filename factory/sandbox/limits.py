"""Typed limits and results for the program sandbox."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "error", "timeout", "limit", "denied"]

# Modules a TinyGSM-style solution plausibly needs; nothing here touches the
# file system, processes or the network.
DEFAULT_ALLOWED_IMPORTS = frozenset({
    "math", "fractions", "decimal", "statistics", "itertools", "functools",
    "operator", "collections", "datetime", "re", "string", "random",
    "numbers", "cmath",
})


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: float = 2.0
    wall_seconds: float = 5.0
    memory_mb: int = 256
    output_bytes: int = 16_000
    allowed_imports: frozenset[str] = DEFAULT_ALLOWED_IMPORTS

    def __post_init__(self) -> None:
        if not self.cpu_seconds > 0 or not self.wall_seconds > 0:
            raise ValueError("cpu_seconds and wall_seconds must be > 0")
        # Below ~32 MiB of address space the interpreter cannot even start.
        if self.memory_mb < 32:
            raise ValueError("memory_mb must be >= 32")
        if self.output_bytes < 0:
            raise ValueError("output_bytes must be >= 0")
        if not isinstance(self.allowed_imports, frozenset):
            object.__setattr__(self, "allowed_imports", frozenset(self.allowed_imports))


@dataclass(frozen=True)
class SandboxResult:
    status: Status
    value: str | None
    reason: str
    stdout: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"
