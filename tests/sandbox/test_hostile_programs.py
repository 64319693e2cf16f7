"""Hostile programs: each must be stopped or denied, with the status and reason that say
which limit or policy stopped it (outcomes, not wall-clock bounds), and leave nothing
behind (no processes, files, temp dirs, env changes)."""
import os
import secrets
import tempfile
import textwrap

import psutil
import pytest

from factory.sandbox import SandboxLimits, run_program
from factory.sandbox.runner import _run, network_isolated

LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=2, memory_mb=128)
AS_ROOT = os.geteuid() == 0
SECRET = "s3cr3t-" + secrets.token_hex(8)
PWNED = f"/tmp/pwned_{secrets.token_hex(8)}"
STOPPED = {"denied", "error", "limit", "timeout"}


def _stable_id(value):
    """Test ids without PWNED's random part: pytest-xdist's workers must collect the same ids."""
    return value.replace(PWNED, "/tmp/pwned_RANDOM") if isinstance(value, str) else None


@pytest.fixture(autouse=True)
def _leaves_nothing_behind(monkeypatch):
    monkeypatch.setenv("FACTORY_TEST_SECRET", SECRET)
    env_before, cwd_before = _env(), os.getcwd()
    created = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        created.append(real_mkdtemp(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    yield
    assert psutil.Process().children(recursive=True) == []
    assert not any(os.path.exists(d) for d in created)
    assert not os.path.exists(PWNED)
    assert _env() == env_before and os.getcwd() == cwd_before


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def check(src: str, expected: set, limits: SandboxLimits = LIMITS, layers=frozenset()):
    res = _run(textwrap.dedent(src), "simple_math_problem", limits, frozenset(layers))
    assert res.status in expected, res
    assert SECRET not in (res.value or "") + res.stdout + res.reason
    return res


def fn(body: str, head: str = "") -> str:
    """Wrap `body` into the entry function, with optional module-level head."""
    return head + "\ndef simple_math_problem():\n" + textwrap.indent(textwrap.dedent(body), "    ")


# --- resource exhaustion -------------------------------------------------

def test_infinite_loop_hits_cpu_limit():
    # Wall limit well above the CPU limit so a loaded machine still shows "limit".
    res = check(fn("while True:\n    pass"), {"limit"}, SandboxLimits(cpu_seconds=1, wall_seconds=4))
    assert res.reason == "cpu time limit 1s exceeded"


def test_wall_clock_timeout_kills_the_group():
    res = check(fn("while True:\n    pass"), {"timeout"},
                SandboxLimits(cpu_seconds=10, wall_seconds=1))
    assert res.reason == "wall time limit 1s exceeded"  # the group killed: the fixture finds no child left


@pytest.mark.parametrize("body", [
    "return len(bytearray(10**10))",
    "x = []\nwhile True:\n    x.append([0] * 100000)",
    "return len('x' * 10**10)",
    "return 10 ** 10 ** 10",
])
def test_memory_hog(body):
    res = check(fn(body), {"limit", "timeout"})  # timeout only on a starved CPU
    assert res.reason.startswith(("memory limit 128 MB", "cpu time limit", "wall time limit"))


@pytest.mark.parametrize("body", [
    "while True:\n    print('x' * 100)",
    "print('y' * 10**6)",
    "for i in range(10**7):\n    print(i)",
])
def test_huge_output(body):
    res = check(fn(body), {"limit"})
    assert res.reason == f"output limit {LIMITS.output_bytes} bytes exceeded"
    assert len(res.stdout.encode()) <= LIMITS.output_bytes


def test_huge_source_is_refused():
    assert check("x = 1\n" * 100_000, {"limit"}).reason.startswith("program longer than")


# --- processes, files, environment, network --------------------------------

HOSTILE = {
    "fork_loop": fn("while True:\n    os.fork()", "import os"),
    "fork_from": fn("fork()\nreturn 1", "from os import fork"),
    "fork_alias": fn("o.fork()", "import os as o"),
    "fork_dunder_import": fn("__import__('os').fork()"),
    "fork_builtins_dict": fn("__builtins__['__import__']('os').fork()"),
    "fork_getattr": fn("getattr(__builtins__, '__import__')('os').fork()"),
    "fork_exec": fn("exec('import os; os.fork()')"),
    "fork_eval": fn("eval(\"__import__('os').fork()\")"),
    "forkpty": fn("import pty\npty.fork()"),
    "posix_spawn": fn("import posix\nposix.posix_spawn('/bin/sh', ['sh'], {})"),
    "multiprocessing": fn("import multiprocessing\nmultiprocessing.Process().start()"),
    "subprocess": fn("subprocess.run(['touch', '" + PWNED + "'])", "import subprocess"),
    "os_system": fn("os.system('touch " + PWNED + "')", "import os"),
    "write_outside": fn("open('" + PWNED + "', 'w').write('x')"),
    "write_via_io": fn("io.open('" + PWNED + "', 'w').write('x')", "import io"),
    "write_pathlib": fn("pathlib.Path('" + PWNED + "').write_text('x')", "import pathlib"),
    "read_passwd": fn("return open('/etc/passwd').read()"),
    "read_environ": fn("return dict(os.environ)", "import os"),
    "read_secret": fn("return os.environ['FACTORY_TEST_SECRET']", "import os"),
    "getenv": fn("return os.getenv('FACTORY_TEST_SECRET')", "from os import getenv"),
    "socket": fn("s = socket.socket()\ns.connect(('1.1.1.1', 53))", "import socket"),
    "urllib": fn("urllib.request.urlopen('http://example.com')", "import urllib.request"),
    "ctypes": fn("ctypes.CDLL(None).system(b'id')", "import ctypes"),
    "kill_parent": fn("os.kill(os.getppid(), 9)", "import os"),
    "importlib": fn("importlib.import_module('os').fork()", "import importlib"),
    "sys_modules": fn("sys.modules['os'].fork()", "import sys"),
    "builtins_module": fn("builtins.open('/etc/passwd')", "import builtins"),
    "relative_import": fn("return 1", "from . import secrets_module"),
    "dotted_import": fn("return os.path.exists('/')", "import os.path"),
    # object-graph escapes
    "subclasses": fn("return ().__class__.__bases__[0].__subclasses__()"),
    "subclasses_object": fn("return object.__subclasses__()"),
    "mro": fn("return ''.__class__.__mro__[1].__subclasses__()"),
    "func_globals": fn("return simple_math_problem.__globals__"),
    "code_object": fn("return simple_math_problem.__code__"),
    "init_globals": fn("return simple_math_problem.__init__.__globals__"),
    "private_import": fn("return _os", "from random import _os"),
    "print_self": fn("return print.__self__.open('/etc/passwd').read()"),
    "dict_dunder": fn("return simple_math_problem.__dict__"),
    "gen_frame": fn("g = (i for i in [1])\nreturn g.gi_frame.f_back.f_globals"),
    "frame_via_format": fn("g = (i for i in [1])\nreturn '{0.gi_frame.f_back}'.format(g)"),
    "tb_frame": fn("try:\n    1 / 0\nexcept Exception as e:\n    return e.__traceback__.tb_frame"),
    "match_class": fn("match ():\n    case object(__class__=c):\n        return c"),
    "private_module_attr": fn("return random._os.system('id')", "import random"),
    "module_in_module": fn("return statistics.sys.modules['os'].system('id')", "import statistics"),
    "module_chain": fn("return re.enum.sys.modules", "import re"),
    "attrgetter": fn("return operator.attrgetter('__globals__')(simple_math_problem)",
                     "import operator"),
    "formatter": fn("return string.Formatter().get_field('0.__globals__', [simple_math_problem], {})",
                    "import string"),
    "update_wrapper": fn(
        "class C:\n    pass\nc = C()\n"
        "functools.update_wrapper(c, simple_math_problem, assigned=('__globals__',), updated=())\n"
        "return c", "import functools"),
    "vars_globals": fn("return vars()['__builtins__']"),
    "globals": fn("return globals()['__builtins__']"),
    "compile": fn("return compile('1', 'x', 'eval')"),
    "breakpoint": fn("breakpoint()"),
    "input": fn("return input()"),
    "type_new": fn("return type('X', (), {})"),
    "swallowed": fn("try:\n    import os\nexcept BaseException:\n    pass\nreturn 1"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_stopped(name):
    res = check(HOSTILE[name], {"denied", "error"})
    assert res.value is None


@pytest.mark.parametrize("name", [
    "fork_loop", "fork_dunder_import", "os_system", "write_outside", "read_passwd",
    "read_environ", "socket", "ctypes", "subclasses", "gen_frame", "swallowed",
    "init_globals", "match_class", "frame_via_format",
])
def test_policy_violations_are_denied(name):
    assert check(HOSTILE[name], {"denied"}).reason


def test_denial_reason_names_the_import():
    res = check(fn("return 1", "import os"), {"denied"})
    assert res.reason.startswith("import of 'os' is not allowed")


# --- defence in depth: switch outer layers off, inner ones still hold -------

NO_AST = {"ast"}
NO_PY = {"ast", "builtins"}           # only the audit hook is left in Python
NO_GUARDS = {"ast", "builtins", "audit"}  # only the OS layers are left


def test_guarded_import_without_ast_check():
    res = check(fn("try:\n    import os\nexcept BaseException:\n    pass\nreturn 1"),
                {"denied"}, layers=NO_AST)
    assert res.reason == "import of 'os' is not allowed"
    check(fn("return getattr", ""), {"error"}, layers=NO_AST)  # not in builtins


@pytest.mark.parametrize("body, reason", [
    ("os.system('touch " + PWNED + "')", "os.system"),
    ("os.fork()", "os.fork"),
    ("os.posix_spawn('/bin/true', ['true'], {})", "os.posix_spawn"),
    ("os.execv('/bin/true', ['true'])", "os.exec"),
    ("os.kill(os.getppid(), 0)", "os.kill"),
    ("open('" + PWNED + "', 'w')", "for writing"),
    ("os.open('" + PWNED + "', os.O_CREAT | os.O_WRONLY)", "for writing"),
    ("open('/etc/passwd').read()", "reading '/etc/passwd'"),
    ("os.listdir('/')", "listing"),
    ("import socket", "import of 'socket'"),
    ("import ctypes", "import of 'ctypes'"),
    ("import subprocess", "import of 'subprocess'"),
    ("sys._getframe()", "sys._getframe"),
    ("sys.addaudithook(lambda *a: None)", "sys.addaudithook"),
    ("try:\n    os.system('true')\nexcept BaseException:\n    pass\nreturn 1", "os.system"),
], ids=_stable_id)
def test_audit_hook_without_python_guards(body, reason):
    res = check(fn(body, "import os, sys"), {"denied"}, layers=NO_PY)
    assert reason in res.reason, res.reason


def _raw(body: str):
    return check(fn(body, "import os"), {"ok", "error"}, layers=NO_GUARDS)


def test_environment_is_empty():
    res = _raw("return sorted(os.environ)")
    assert res.status == "ok"
    assert set(eval(res.value)) <= {"LC_CTYPE"}  # set by Python's C-locale coercion


@pytest.mark.skipif(not AS_ROOT, reason="privilege drop needs root")
def test_privileges_are_dropped():
    res = _raw("return (os.getuid(), os.geteuid(), os.getgid(), os.getgroups())")
    assert res.value == "(65534, 65534, 65534, [])"
    res = _raw("return open('/proc/%d/environ' % os.getppid(), 'rb').read()")
    assert res.status == "error" and "Permission" in res.reason


@pytest.mark.parametrize("body", [
    "return os.fork()",
    "return os.posix_spawn('/bin/true', ['true'], {})",
    "return os.system('touch " + PWNED + "')",
    "f = open('" + PWNED + "', 'w')\nf.write('x')\nf.close()",
], ids=_stable_id)
def test_kernel_blocks_processes_and_writes(body):
    # RLIMIT_NPROC=0 as nobody, plus the seccomp filter and RLIMIT_FSIZE=0.
    res = _raw(body)
    assert res.status == "error" or res.value in ("-1", "127", "32512"), res


def test_seccomp_filter_is_active():
    res = _raw("return open('/proc/self/status').read().split('Seccomp:')[1].split()[0]")
    if res.value == "0":
        pytest.skip("libseccomp not available")
    assert res.value == "2"


@pytest.mark.skipif(not network_isolated(), reason="unshare -n unavailable")
def test_network_namespace_has_only_loopback():
    res = _raw("return [l.split(':')[0].strip() for l in open('/proc/self/net/dev')][2:]")
    assert res.value == "['lo']"


def test_rlimits_are_set():
    res = _raw("import resource\nreturn [resource.getrlimit(getattr(resource, 'RLIMIT_' + n))"
               " for n in ('CPU', 'AS', 'FSIZE', 'NOFILE', 'CORE', 'NPROC')]")
    if res.status == "error":  # resource module unreadable after the drop
        pytest.skip(res.reason)
    assert res.value == str([(1, 2), (128 << 20,) * 2, (0, 0), (16, 16), (0, 0), (0, 0)])


# --- our process is unharmed ---------------------------------------------

def test_public_api_runs_hostile_program():
    res = run_program("import os\ndef simple_math_problem():\n    return os.fork()\n", limits=LIMITS)
    assert res.status == "denied"


def test_own_process_is_fine():
    me = psutil.Process()
    assert me.children(recursive=True) == []
    assert os.environ.get("FACTORY_TEST_SECRET") == SECRET
    assert not os.path.exists(PWNED)
    fds = me.num_fds()
    for src in (HOSTILE["fork_loop"], "def simple_math_problem():\n    return 1\n",
                fn("while True:\n    print('x' * 100)")):
        run_program(src, limits=LIMITS)
    assert me.num_fds() == fds  # no leaked pipes
    assert me.children(recursive=True) == []
