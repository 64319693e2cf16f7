"""Run a fake-backend job in its own process, so a test can SIGKILL it mid-batch."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fakes  # noqa: E402
from conftest import fake_job  # noqa: E402

from factory.pipeline import run_job  # noqa: E402
from factory.spec import parse_job  # noqa: E402

fakes.install()


class PrintBatches:
    """Tells the test each committed batch, so it can kill the job mid-way for sure."""

    def start(self, total, done): ...
    def tokens(self, n): ...
    def stop(self): ...

    def batch(self, samples, outcomes):
        print("batch", flush=True)


spec = parse_job(fake_job(num_samples=int(sys.argv[2]), roles={
    role: {"backend": "fake", "model": "fake-slow", "template": f"tinystories/{role}@1"}
    for role in ("generator", "reviewer", "adjudicator")
}, execution={"executor": "local", "batch_size": 3}))
run_job(spec, db=sys.argv[1], progress=PrintBatches())
print("finished", flush=True)
