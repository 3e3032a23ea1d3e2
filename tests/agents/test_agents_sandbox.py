"""The sandbox holds: each known escape (smolagents CVE-2025-5120/-9959 style class-hierarchy walks, getattr
chains, ctypes, importlib, file reads outside scratch, sockets, fork bombs, infinite loops, huge output,
memory and disk bombs) is contained in the child process and explained to the model in one line; so is each
resource exhaustion (memory at once or growing, threads, one huge or sparse file, the disk quota over many
files, a folder bomb, output floods on stdout or stderr), and the agent loop goes on after each."""
from __future__ import annotations

import pytest

from frontierkit.agents.sandbox import Limits, python, run_python

FAST = Limits(cpu_seconds=1, wall_seconds=3.0, memory_mb=256, file_size_mb=2, output_bytes=5000, disk_mb=16)

ESCAPES = {
    "subclasses_to_popen": ("[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0]"
                            "(['id'])", "exception"),   # Popen is never loaded in the child: IndexError
    "subclasses_to_os_system": ("[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close']"
                                "[0].__init__.__globals__['system']('id')", "blocked"),
    "getattr_chain": ("getattr(getattr(__import__('os'), 'popen'), '__call__')('id').read()", "blocked"),
    "importlib_subprocess": ("import importlib\nimportlib.import_module('subprocess').run(['id'])", "blocked"),
    "ctypes": ("import ctypes\nctypes.CDLL(None).system(b'id')", "blocked"),
    "read_etc_passwd": ("open('/etc/passwd').read()", "blocked"),
    "read_home": ("import os\nos.listdir(os.path.expanduser('~root'))", "blocked"),
    "read_repo": (f"open({__file__!r}).read()", "blocked"),
    "write_outside": ("open('/tmp/frontier-sandbox-escape.txt', 'w').write('x')", "blocked"),
    "symlink_out": ("import os\nos.symlink('/etc/passwd', 'p')", "blocked"),
    "socket": ("import socket\nsocket.socket().connect(('127.0.0.1', 22))", "blocked"),
    "raw_socket_via_subclasses": ("[c for c in ().__class__.__base__.__subclasses__() if c.__name__=='socket'][0]()",
                                  "exception"),
    "fork_bomb": ("import os\nwhile True:\n    os.fork()", "blocked"),
    "posix_fork": ("import posix\nposix.fork()", "blocked"),
    "frame_walk_to_hook": ("try:\n    1/0\nexcept Exception as e:\n    e.__traceback__.tb_frame.f_back.f_locals",
                           "blocked"),
    "gc_walk": ("import gc\ngc.get_objects()", "blocked"),
    "infinite_loop": ("while True:\n    pass", "cpu|timeout"),        # timeout first on a loaded machine
    "sleep_forever": ("import time\ntime.sleep(60)", "timeout"),
    "huge_output": ("while True:\n    print('x' * 1000)", "output"),
    "memory_bomb": ("x = bytearray(2**32)", "memory"),
    "memory_growth": ("x = []\nwhile True:\n    x.append(bytearray(10**6))", "memory"),
    "thread_bomb": ("import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(9,)).start()",
                    "threads"),
    "disk_fill": ("open('big', 'wb').write(b'x' * (4 * 2**20))", "file_size"),
    "sparse_file": ("open('s', 'wb').truncate(2**40)", "file_size"),
    "append_past_file_size": ("for i in range(100):\n    open('a', 'ab').write(b'x' * 10**5)", "file_size"),
    "disk_quota_many_files": ("for i in range(60):\n    open(f'f{i}', 'wb').write(b'x' * 2**20)", "disk"),
    "many_files": ("for i in range(100):\n    open(f'f{i}', 'w').write('x')", "blocked"),
    "folder_bomb": ("import os\nfor i in range(10**5):\n    os.mkdir(f'd{i}')", "blocked"),
    "stderr_flood": ("import sys\nwhile True:\n    sys.stderr.write('y' * 1000)", "output"),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_sandbox_contains_escape(name):
    code, kind = ESCAPES[name]
    r = run_python(code, FAST)
    assert r.error in kind.split("|"), (r.error, r.stdout[-300:], r.stderr[-300:])
    obs = r.observation()
    assert obs.count("\n") <= 1 + r.stdout.count("\n") and obs.splitlines()[-1].startswith("Error: ")
    assert "uid=" not in r.stdout and "root:" not in r.stdout          # nothing leaked
    assert r.seconds < FAST.wall_seconds + 2
    assert len(obs.splitlines()[-1]) < 500                               # one short line, even for a flood


def test_sandbox_runs_normal_code_and_prints_last_expression():
    r = run_python("import math, json\nx = [math.factorial(i) for i in range(6)]\nprint(json.dumps(x))\nsum(x)\n"
                   "open('notes.txt', 'w').write('ok')\nopen('notes.txt').read()", FAST)
    assert r.ok and r.stdout.splitlines() == ["[1, 1, 2, 6, 24, 120]", "'ok'"]
    assert {"process", "rlimits", "audit-hook"} <= set(r.boundary)


def test_sandbox_scratch_is_fresh_and_env_scrubbed():
    r1 = run_python("open('keep.txt', 'w').write('1')\nimport os\nsorted(os.environ)", FAST)
    r2 = run_python("import os\nos.listdir('.')", FAST)
    assert r1.ok and r2.ok and r2.stdout.strip() == "[]"
    assert set(eval(r1.stdout)) <= {"PATH", "LANG", "HOME", "LC_CTYPE"}   # no keys, tokens or proxies


def test_python_tool_reports_errors_as_text():
    assert python.invoke({"code": "1/0"}).startswith("Error: the code raised an exception: ZeroDivisionError")
    assert python.invoke({"code": "print(6 * 7)"}) == "42"


def test_network_namespace_layer_holds_without_the_audit_hook():
    """Layer 3 alone (no audit hook): the child sees only loopback and cannot reach an outside address."""
    import subprocess
    import sys

    from frontierkit.agents import sandbox
    if not sandbox._netns_available():
        pytest.skip("unshare(CLONE_NEWNET) is not permitted here")
    code = ("import socket; print([n for _, n in socket.if_nameindex()]); s = socket.socket(); s.settimeout(2); "
            "print(s.connect_ex(('1.1.1.1', 80)))")
    r = subprocess.run([sys.executable, "-c", code], preexec_fn=sandbox._preexec(FAST, None, True),
                       capture_output=True, text=True, timeout=20)
    names, rc = r.stdout.splitlines()
    assert names == "['lo']" and rc != "0"


def test_disk_quota_counts_all_files_together():
    """12 files of 1.5 MiB each stay under file_size (2 MiB) and max_files but pass a 16 MiB quota together."""
    r = run_python("for i in range(12):\n    open(f'f{i}', 'wb').write(b'x' * (3 * 2**19))\nprint('done')", FAST)
    assert r.error == "disk" and "disk quota" in r.observation()
    ok = run_python("for i in range(8):\n    open(f'f{i}', 'wb').write(b'x' * (3 * 2**19))\nprint('done')", FAST)
    assert ok.ok and ok.stdout.strip() == "done"


def test_output_cap_counts_stdout_and_stderr_together():
    r = run_python("import sys\nfor _ in range(4):\n    print('x' * 1000)\n    sys.stderr.write('y' * 1000 + '\\n')",
                   FAST)
    assert r.error == "output" and len(r.stdout) + len(r.stderr) <= FAST.output_bytes


def test_agent_loop_continues_after_each_resource_exhaustion():
    """A scripted model calls the python tool with a memory bomb, a fork bomb, a thread bomb, a disk fill, an
    output flood, then ordinary code, then answers: each bomb comes back as one 'Error: ...' observation, the
    loop goes on, and the last tool call and the answer work (default Limits)."""
    import json

    from frontierkit.agents.backends import Reply, ScriptedBackend, ToolCall
    from frontierkit.agents.loops import function_calling
    bombs = ["x = bytearray(2**34)", "import os\nwhile True:\n    os.fork()",
             "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(9,)).start()",
             "for i in range(40):\n    open(f'f{i}', 'wb').write(b'x' * 4 * 2**20)", "while True:\n    print('x' * 10**4)",
             "print(6 * 7)"]
    script = [Reply("", [ToolCall(f"c{i}", "python", json.dumps({"code": c}))]) for i, c in enumerate(bombs)]
    res = function_calling(ScriptedBackend([*script, Reply("42")]), {"python": python}, "compute 6*7", max_steps=10)
    obs = [e for e in res.trace if e["type"] == "observation"]
    assert res.answer == "42" and res.stopped == "answer" and len(obs) == 6
    assert all("Error: " in e["text"] for e in obs[:5]) and not obs[-1]["error"] and obs[-1]["text"] == "42"
    for e, words in zip(obs, ("memory limit", "process", "threads", "disk quota", "output limit")):
        assert words in e["text"], (words, e["text"][-300:])
