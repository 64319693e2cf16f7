"""RichProgress: plain lines on a non-terminal console, the bar on a terminal; a fake clock, no sleeps."""
import io
import re

import pytest
from rich.console import Console

from factory.progress import EVERY_S_ENV, RichProgress


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def plain(every_s=None, **kw):
    buf, clock = io.StringIO(), FakeClock()
    console = Console(file=buf, force_terminal=False, width=80)
    return RichProgress(console, every_s=every_s, clock=clock, **kw), buf, clock


def lines(buf: io.StringIO) -> list[str]:
    return [line for line in buf.getvalue().splitlines() if line.strip()]


def test_plain_lines_only_when_the_interval_has_passed():
    p, buf, clock = plain(every_s=10)
    p.start(total=30, done=0)
    clock.now += 4
    p.tokens(200)
    p.batch(6, {"accepted": 4, "rejected": 1, "adjudicated": 1, "dropped": 1})
    assert lines(buf) == []  # 4 s < 10 s
    clock.now += 6  # 10 s since start
    p.tokens(300)
    assert len(lines(buf)) == 1
    clock.now += 9.5
    p.batch(6, {"accepted": 6, "rejected": 0, "adjudicated": 0, "dropped": 0})
    assert len(lines(buf)) == 1  # 9.5 s since the last line
    clock.now += 0.5
    p.tokens(100)
    assert len(lines(buf)) == 2


def test_plain_line_holds_done_total_eta_acceptance_and_tokens_per_second():
    p, buf, clock = plain(every_s=10)
    p.start(total=30, done=0)
    clock.now += 9
    p.tokens(1000)  # 9 s: no line yet
    clock.now += 11
    p.batch(10, {"accepted": 6, "rejected": 3, "adjudicated": 2, "dropped": 1})
    [line] = lines(buf)
    assert "samples 10/30" in line
    # 10 samples in 20 s -> 0.5/s -> 20 left take 40 s
    assert "ETA 0:00:40" in line
    assert "accept 60% (6/10)" in line
    assert "50 tok/s" in line  # 1000 tokens / 20 s
    assert "2 adjudicated" in line and "1 dropped" in line


def test_eta_counts_only_this_runs_samples_after_a_resume():
    p, buf, clock = plain(every_s=5)
    p.start(total=100, done=90)
    clock.now += 5
    p.tokens(10)
    assert "samples 90/100" in lines(buf)[0] and "ETA --:--:--" in lines(buf)[0]  # no rate yet
    clock.now += 5
    p.batch(5, {"accepted": 5, "rejected": 0, "adjudicated": 0, "dropped": 0})
    # 5 samples this run in 10 s -> 0.5/s -> 5 left take 10 s (the 90 resumed ones do not count)
    assert "samples 95/100" in lines(buf)[1] and "ETA 0:00:10" in lines(buf)[1]


def test_stop_prints_the_summary():
    p, buf, clock = plain(every_s=10)
    p.start(total=12, done=0)
    clock.now += 3
    p.tokens(600)
    p.batch(12, {"accepted": 9, "rejected": 2, "adjudicated": 3, "dropped": 1})
    p.stop()
    [summary] = lines(buf)
    assert summary.startswith("finished: samples 12/12 (12 this run) in 0:00:03")
    assert "accept 75% (9/12)" in summary and "200 tok/s" in summary and "600 completion tokens" in summary


def test_every_s_from_the_environment(monkeypatch):
    monkeypatch.setenv(EVERY_S_ENV, "2.5")
    p, buf, clock = plain()
    assert p.every_s == 2.5
    p.start(total=4, done=0)
    clock.now += 2.5
    p.tokens(5)
    assert len(lines(buf)) == 1


@pytest.mark.parametrize("raw", ["abc", "0", "-3", "nan", "inf"])
def test_a_bad_environment_value_is_one_clear_error(monkeypatch, raw):
    monkeypatch.setenv(EVERY_S_ENV, raw)
    with pytest.raises(ValueError, match=rf"^{EVERY_S_ENV}: expected a number of seconds > 0, got '{raw}'$"):
        plain()


def test_terminal_gets_the_bar_with_eta_and_acceptance():
    buf, clock = io.StringIO(), FakeClock()
    console = Console(file=buf, force_terminal=True, width=200, color_system=None)
    p = RichProgress(console, every_s=10, clock=clock)
    p.start(total=30, done=0)
    clock.now += 20
    p.tokens(1000)
    p.batch(10, {"accepted": 6, "rejected": 3, "adjudicated": 2, "dropped": 1})
    p.stop()
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue()).splitlines()[-1]
    assert "10/30" in final and "ETA 0:00:40" in final and "accept 60% (6/10)" in final and "50 tok/s" in final
    assert "finished:" not in buf.getvalue()  # the plain summary is for non-terminals only
