"""Format-string attribute walks (issue 23 C): str.format, format_map and format specs read
attributes by name at run time, where the AST check on dunder names cannot see them. A
walk in a literal is refused; one built at run time reaches nothing secret: never the
result nonce (the runner's guard against a forged result), never an environment value."""
import secrets
import textwrap

import pytest

import factory.sandbox.runner as runner
from factory.sandbox import SandboxLimits

LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=5, memory_mb=128, output_bytes=1_000_000)
SECRET = "s3cr3t-" + secrets.token_hex(8)

# The route the fault-injection round used, then its neighbours: every closure cell of the
# guarded import and of what it holds, the child's module globals through a real module's
# sys, the environment through random's os. Built at run time ("__glob" + "als__"), as a
# program that knows the static check would.
WALKS = [
    "0.__globals__[__builtins__][__import__].__closure__[1].cell_contents.__closure__[0].cell_contents.nonce",
    "0.__globals__[__builtins__][__import__].__closure__[{i}].cell_contents.__closure__[{j}].cell_contents.__dict__",
    "0.__globals__[__builtins__][__import__].__closure__[{i}].cell_contents.__closure__[{j}].cell_contents",
    "0.__globals__[__builtins__][__import__].__closure__[{i}].cell_contents",
    "1.__init__.__globals__[_os].environ",
    "1.__init__.__globals__[_os].sys.modules[__main__].__dict__",
    "1.__init__.__globals__[_os].sys.modules[guard].__dict__",
    "1.__init__.__globals__[_os].sys.argv",
]


def runtime_walks(method: str) -> str:
    """A program trying every walk with `method`, returning everything it could read."""
    return textwrap.dedent(f'''
        import random
        import string

        def simple_math_problem():
            found = []
            for walk in {WALKS!r}:
                for i in range(5):
                    for j in range(3):
                        field = "{{" + walk.format(i=i, j=j) + "}}"
                        try:
                            found.append({method})
                        except Exception as e:  # an index past the end, a missing attribute
                            found.append(repr(e))
            return " ".join(sorted(set(found)))
    ''')


METHODS = {
    "format": "field.format(simple_math_problem, random.Random)",
    "format_map": "field.replace('{0', '{f').replace('{1', '{r').format_map("
                  "{'f': simple_math_problem, 'r': random.Random})",
    # the walk inside the spec of another field; the spec's value is echoed in the ValueError
    "format_spec": "('{2:' + field + '}').format(simple_math_problem, random.Random, '')",
}


@pytest.fixture
def nonces(monkeypatch):
    """The nonce of each run, as the runner made it."""
    made, real = [], runner.secrets.token_hex

    def recording(n=None):
        made.append(real(n))
        return made[-1]

    monkeypatch.setattr(runner.secrets, "token_hex", recording)
    monkeypatch.setenv("FACTORY_TEST_SECRET", SECRET)
    return made


def assert_nothing_secret(res, nonces):
    seen = (res.value or "") + res.stdout + res.reason
    assert nonces and not any(n in seen for n in nonces), res
    assert SECRET not in seen
    # no environment value of the parent (the child gets none; paths such as PWD do appear,
    # as module file names) and none of the child's own (Python's locale coercion sets one)
    assert "LC_CTYPE" not in seen and "C.UTF-8" not in seen


@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_walk_built_at_run_time_reaches_no_secret(method, nonces):
    res = runner._run(runtime_walks(METHODS[method]), "simple_math_problem", LIMITS)
    assert_nothing_secret(res, nonces)
    assert res.status == "ok", res  # the walks ran: what they read is there, the secrets are not
    if method != "format_spec":  # there only what an error message echoes
        assert "environ({})" in res.value and "'RESULT_FD': 3" in res.value  # the child's env, its globals


@pytest.mark.parametrize("src", [
    'return "{0.__globals__}".format(simple_math_problem)',
    'return "{f.__globals__}".format_map({"f": simple_math_problem})',
    'return "{0:{1.__globals__}}".format(1, simple_math_problem)',
    't = "{0.__init__.__globals__[_os].environ}"\nreturn t.format(random.Random)',
    'return f"{{0.__globals__}}".format(simple_math_problem)',
    'return "{0.gi_frame.f_back}".format(x for x in [1])',
])
def test_a_walk_written_in_a_literal_is_refused(src, nonces):
    program = "import random\n\ndef simple_math_problem():\n" + textwrap.indent(src, "    ")
    res = runner._run(program, "simple_math_problem", LIMITS)
    assert res.status == "denied" and "format string walks to attribute" in res.reason, res
    assert_nothing_secret(res, nonces)


def test_formatter_stays_out_of_reach(nonces):
    # string.Formatter.get_field is the same walk in Python: the module view hides it
    program = "import string\n\ndef simple_math_problem():\n    return string.Formatter().vformat('{0}', [1], {})"
    res = runner._run(program, "simple_math_problem", LIMITS)
    assert res.status == "error" and "Formatter" in res.reason, res
    assert_nothing_secret(res, nonces)


def test_ordinary_format_strings_still_work(nonces):
    program = textwrap.dedent('''
        def simple_math_problem():
            price = 2.5
            return "{0:.2f} {1} {x} {0.real}".format(price, 3, x="y") + "{a}".format_map({"a": 1}) + f"{price:>6}"
    ''')
    res = runner._run(program, "simple_math_problem", LIMITS)
    assert (res.status, res.value) == ("ok", "2.50 3 y 2.5" + "1" + "   2.5"), res
