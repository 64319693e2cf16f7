"""Run untrusted, model-generated Python programs in a locked-down child process."""
from .limits import SandboxLimits, SandboxResult
from .runner import run_program

__all__ = ["run_program", "SandboxLimits", "SandboxResult"]
