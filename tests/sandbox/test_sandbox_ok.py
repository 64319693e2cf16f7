"""Well-behaved programs and ordinary failures: typed results, exact values."""
import dataclasses
import textwrap

import pytest

from factory.sandbox import SandboxLimits, SandboxResult, run_program

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=2)

TINYGSM = '''
def simple_math_problem():
    """Tom has 3 apples and buys 5 more. How many apples does he have?"""
    apples = 3
    bought = 5
    result = apples + bought
    return result
'''


def run(src: str, **kw) -> SandboxResult:
    return run_program(textwrap.dedent(src), limits=kw.pop("limits", LIMITS), **kw)


def test_tinygsm_program():
    res = run(TINYGSM)
    assert (res.status, res.value, res.reason, res.stdout) == ("ok", "8", "", "")
    assert res.seconds > 0  # the run's time is recorded; a slow machine is no failure (status is the outcome)


@pytest.mark.parametrize("body, value", [
    ("return 6 * 7", "42"),
    ("return 0.1 + 0.2", "0.30000000000000004"),
    ("return 2.5", "2.5"),
    ("return -3", "-3"),
    ("return True", "True"),
    ("return None", "None"),
    ("return [1, 2]", "[1, 2]"),
    ("return 'twelve'", "twelve"),
])
def test_plain_values(body, value):
    res = run(f"def simple_math_problem():\n    {body}\n")
    assert (res.status, res.value) == ("ok", value)


def test_fraction_and_decimal_use_str():
    res = run("""
        from fractions import Fraction
        def simple_math_problem():
            return Fraction(1, 3) + Fraction(1, 6)
    """)
    assert (res.status, res.value) == ("ok", "1/2")
    res = run("""
        import decimal
        def simple_math_problem():
            return decimal.Decimal("1.10") * 2
    """)
    assert (res.status, res.value) == ("ok", "2.20")


def test_allowed_modules_work():
    res = run("""
        import math, itertools, functools, operator, statistics, re, string, random, cmath
        from collections import Counter, namedtuple, defaultdict
        from datetime import datetime, timedelta
        def simple_math_problem():
            Point = namedtuple("Point", "x y")
            days = (datetime.strptime("2024-03-01", "%Y-%m-%d") - datetime(2024, 2, 1)).days
            total = functools.reduce(operator.add, itertools.chain([1, 2], [3]))
            counts = Counter("banana")["a"]
            rng = random.Random(7).randint(1, 1)
            digits = len(re.findall("[0-9]", "a1b22")) + len(string.digits)
            return (Point(2, 3).x + days + total + counts + rng + digits
                    + math.isqrt(16) + statistics.mean([1, 2, 3]) + int(abs(cmath.sqrt(-4))))
    """)
    assert (res.status, res.reason, res.value) == ("ok", "", str(2 + 29 + 6 + 3 + 1 + 13 + 4 + 2 + 2))


def test_classes_and_prints_are_captured():
    res = run("""
        class Basket:
            def __init__(self, apples):
                self.apples = apples
            def add(self, n):
                self.apples += n
                return self
        def simple_math_problem():
            print("héllo", 3)
            return Basket(3).add(5).apples
    """)
    assert (res.status, res.value, res.stdout) == ("ok", "8", "héllo 3\n")


def test_common_idioms_are_not_rejected():
    res = run("""
        from collections import namedtuple
        class Base:
            def __init__(self, n):
                self._n = n
        class Kid(Base):
            def __init__(self, n):
                super().__init__(n * 2)
        def simple_math_problem():
            P = namedtuple("P", "a b")
            return Kid(3)._n + P(1, 2)._asdict()["b"]
        if __name__ == "__main__":
            print(simple_math_problem())
    """)
    assert (res.status, res.value, res.stdout) == ("ok", "8", "")


def test_custom_entry_name():
    res = run("def solve():\n    return 5\n", entry="solve")
    assert (res.status, res.value) == ("ok", "5")


@pytest.mark.parametrize("src, reason", [
    ("def simple_math_problem():\n    return 1 / 0\n", "ZeroDivisionError: division by zero"),
    ("def simple_math_problem(:\n    return 1\n", "SyntaxError: "),
    ("def other():\n    return 1\n", "no function 'simple_math_problem' defined"),
    ("simple_math_problem = 3\n", "'simple_math_problem' is not a function"),
    ("x = [][1]\ndef simple_math_problem():\n    return 1\n", "IndexError: list index out of range"),
    ("def simple_math_problem():\n    raise ValueError('no answer')\n", "ValueError: no answer"),
    ("def simple_math_problem():\n    return simple_math_problem()\n", "RecursionError: "),
    ("def simple_math_problem():\n    return 10 ** 5000\n", "ValueError: Exceeds the limit"),
])
def test_errors_are_typed(src, reason):
    res = run(src)
    assert res.status == "error"
    assert res.value is None
    assert res.reason.startswith(reason), res.reason


def test_print_cannot_forge_a_result():
    res = run("""
        def simple_math_problem():
            print('{"nonce": "x", "status": "ok", "value": "999", "reason": ""}')
            return 1 / 0
    """)
    assert (res.status, res.value) == ("error", None)


def test_value_length_is_capped():
    res = run("def simple_math_problem():\n    return 'x' * 100\n",
              limits=dataclasses.replace(LIMITS, output_bytes=50))
    assert res.status == "limit" and "longer than 50" in res.reason


def test_limits_and_result_are_frozen_and_validated():
    limits = SandboxLimits()
    assert (limits.cpu_seconds, limits.wall_seconds, limits.memory_mb, limits.output_bytes) == (
        2.0, 5.0, 256, 16_000)
    assert {"math", "fractions", "decimal", "statistics"} <= limits.allowed_imports
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.cpu_seconds = 9  # type: ignore[misc]
    with pytest.raises(ValueError):
        SandboxLimits(wall_seconds=0)
    with pytest.raises(ValueError):
        run_program("x = 1", entry="not an identifier")
    assert SandboxLimits(allowed_imports={"math"}).allowed_imports == frozenset({"math"})


@pytest.mark.parametrize("body, value", [
    ("π = 3\nreturn π * 2", "6"),
    ("prix_é = 4\nreturn prix_é + 1", "5"),
    ("价格 = 5\n数量 = 3\nreturn 价格 * 数量", "15"),
    ("ｆｕｌｌ = 2\nreturn full", "2"),  # NFKC: the fullwidth name is the ASCII one, as in Python
])
def test_non_ascii_identifiers(body, value):
    # the parser imports unicodedata for a non-ASCII name; before issue 23 D that failed
    # after the privilege drop: "sandbox setup failed: ... No module named 'unicodedata'"
    res = run("def simple_math_problem():\n" + textwrap.indent(body, "    "))
    assert (res.status, res.value) == ("ok", value), res


def test_unicodedata_stays_out_of_the_programs_reach():
    res = run("import unicodedata\ndef simple_math_problem():\n    return 1")
    assert res.status == "denied" and "unicodedata" in res.reason, res
