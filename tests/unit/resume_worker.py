"""Run a fake-backend job in its own process, so a test can SIGKILL it at a known point.

argv: DB N [BATCH_SIZE [BATCHES_IN_FLIGHT]]. Stdout tells the test what happened, one line per event, so it
kills on an event, never after a guessed sleep: `call` after each completion that reached
a model (cache hits print nothing), `saved` after each committed write of the completions
cache, `batch` after each committed batch, `finished` at the end."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fakes  # noqa: E402
from support import fake_job  # noqa: E402

from factory.pipeline import run_job  # noqa: E402
from factory.spec import parse_job  # noqa: E402
from stores.store import Store  # noqa: E402

fakes.install()


class PrintBatches:
    def start(self, total, done): ...
    def stop(self): ...

    def tokens(self, n):  # called once per fresh completion
        print("call", flush=True)

    def batch(self, samples, outcomes):
        print("batch", flush=True)


_put = Store.put_completions


def put_and_say(self, rows):
    _put(self, rows)  # returns once the rows are committed
    print("saved", flush=True)


Store.put_completions = put_and_say

batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 3
in_flight = int(sys.argv[4]) if len(sys.argv) > 4 else 1
spec = parse_job(fake_job(num_samples=int(sys.argv[2]), roles={
    role: {"backend": "fake", "model": "fake-slow", "template": f"tinystories/{role}@1"}
    for role in ("generator", "reviewer", "adjudicator")
}, execution={"executor": "local", "batch_size": batch_size, "batches_in_flight": in_flight}))
run_job(spec, db=sys.argv[1], progress=PrintBatches())
print("finished", flush=True)
