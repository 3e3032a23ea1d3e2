"""The Python tool's sandbox: model-written code runs in a separate OS process. An AST interpreter is not
a security boundary (smolagents' CVE-2025-5120 and CVE-2025-9959 escaped through attribute and
class-hierarchy walks to ``subprocess``); the process is, and the operating system enforces its limits.

The boundary, layer by layer (what :func:`run_python` does, and honestly what it does not):
1. A fresh ``python -I -S -B`` process (no site-packages, no user site, no env-var influence) in its own
   session, with stdin closed, an environment reduced to PATH/LANG/HOME=scratch, cwd = a fresh scratch
   folder that is removed afterwards.
2. Kernel limits (``setrlimit``): CPU seconds, address space (memory), file size, open files, no core
   dumps, and a process count; plus, enforced by the parent, which kills the whole process group: a
   wall-clock timeout, one output cap over stdout + stderr together, and a disk quota on the scratch folder
   (its allocated bytes, polled every 50 ms; a single write can pass it by at most one ``file_size``).
3. When the kernel allows it: a new, empty network namespace (``unshare(CLONE_NEWNET)``: no interface but
   a down loopback), and, when started as root, the child drops to uid/gid ``nobody`` before exec, so file
   permissions and RLIMIT_NPROC apply. ``SandboxResult.boundary`` lists which layers were active.
4. Inside the child, before the model's code runs, a CPython audit hook (PEP 578) refuses process creation
   (fork/exec/spawn/system/Popen), sockets, ctypes, imports of ctypes/subprocess/socket/multiprocessing,
   reads outside the scratch folder and the standard library, writes outside the scratch folder, links,
   frame/gc introspection and rebinding of function internals. Audit hooks are defence in depth, not a
   hard boundary (a memory-corruption bug in CPython could bypass them); layers 1-3 are the boundary.
   Files and folders created count against ``max_files`` (a folder bomb is refused like a file bomb).
   Not covered: CPU side channels.

Resource exhaustion, each contained with a one-line message to the model (tests/agents/test_agents_sandbox.py):
memory (RLIMIT_AS -> MemoryError), fork bombs (the audit hook; RLIMIT_NPROC too when the uid drop works),
thread bombs (RLIMIT_AS), one huge file (RLIMIT_FSIZE -> EFBIG), many files or folders (``max_files``),
total disk (``disk_mb``), output floods on stdout or stderr (``output_bytes``), CPU and wall time.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

from .tools import tool

_BOOTSTRAP = r'''
import sys, os
_code = sys.stdin.read()
sys.stdin.close()
import ast, sysconfig, traceback, posixpath

def _main(code):
    root = os.path.realpath(os.getcwd())
    read_roots = tuple(sorted({os.path.realpath(p) for p in (sysconfig.get_paths()["stdlib"],
                       sysconfig.get_paths()["platstdlib"])} | {root}))
    max_files = int(os.environ.pop("SANDBOX_MAX_FILES", "64"))

    def hook(event, args, root=root, read_roots=read_roots, realpath=os.path.realpath, fspath=os.fspath,
             isinstance=isinstance, str=str, bytes=bytes, PermissionError=PermissionError, written=[0],
             max_files=max_files, wflags=os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
             blocked_imports=frozenset({"ctypes", "_ctypes", "subprocess", "_posixsubprocess", "socket", "_socket",
                                        "ssl", "_ssl", "multiprocessing", "_multiprocessing", "pty", "mmap",
                                        "resource", "_ctypes_test", "asyncio", "select", "selectors"}),
             procs=frozenset({"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                              "subprocess.Popen", "os.kill", "os.killpg", "pty.spawn", "os.startfile"}),
             introspect=frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._getframe",
                                   "sys._current_frames", "sys._current_exceptions", "sys.setprofile",
                                   "sys.settrace", "resource.setrlimit", "resource.prlimit"}),
             frame_attrs=frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}),
             func_attrs=frozenset({"__code__", "__defaults__", "__kwdefaults__", "__globals__", "__closure__"}),
             write_events=frozenset({"os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.truncate", "os.chmod",
                                     "os.chown", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}),
             list_events=frozenset({"os.listdir", "os.scandir", "glob.glob", "os.chdir"})):
        def inside(p, roots):
            if isinstance(p, int) or p is None:
                return True
            p = realpath(fspath(p) if not isinstance(p, bytes) else p.decode(errors="replace"))
            return any(p == r or p.startswith(r + "/") for r in roots) or p in ("/dev/null", "/dev/urandom")
        def refuse(what):
            raise PermissionError(f"sandbox: {what} is not allowed in the sandbox")
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & wflags)
            if writing:
                if not inside(path, (root,)):
                    refuse(f"writing {path!r} (only the scratch folder is writable)")
                written[0] += 1
                if written[0] > max_files:
                    refuse(f"opening more than {max_files} files for writing")
            elif not inside(path, read_roots):
                refuse(f"reading {path!r} (only the scratch folder and the standard library are readable)")
        elif event == "os.mkdir":
            if not inside(args[0], (root,)):
                refuse(f"changing {args[0]!r} (only the scratch folder is writable)")
            written[0] += 1
            if written[0] > max_files:
                refuse(f"creating more than {max_files} files or folders")
        elif event == "import":
            if args[0].partition(".")[0] in blocked_imports:
                refuse(f"import of {args[0]!r} (no processes, sockets or native calls)")
        elif event in procs:
            refuse(f"starting or signalling a process ({event})")
        elif event.startswith("socket."):
            refuse(f"network access ({event})")
        elif event.startswith("ctypes."):
            refuse(f"native code access ({event})")
        elif event in introspect:
            refuse(f"interpreter introspection ({event})")
        elif event == "object.__getattr__" and args[1] in frame_attrs:
            refuse(f"access to frames ({args[1]})")
        elif event == "object.__setattr__" and args[1] in func_attrs:
            refuse(f"rebinding {args[1]}")
        elif event in ("os.symlink", "os.link"):
            refuse(f"creating links ({event})")
        elif event in write_events:
            for p in args:
                if isinstance(p, (str, bytes)) and not inside(p, (root,)):
                    refuse(f"changing {p!r} (only the scratch folder is writable)")
        elif event in list_events:
            if args and isinstance(args[0], (str, bytes)) and not inside(args[0], read_roots):
                refuse(f"listing {args[0]!r} (outside the scratch folder)")

    tree = ast.parse(code, "<sandbox>", "exec")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    body = compile(tree, "<sandbox>", "exec")
    tail = compile(ast.Expression(last.value), "<sandbox>", "eval") if last else None
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    sys.addaudithook(hook)
    try:
        exec(body, g)
        if tail is not None:
            value = eval(tail, g)
            if value is not None:
                print(repr(value))
    except BaseException as e:
        sys.stdout.flush()
        tb = e.__traceback__.tb_next          # tb_frame is refused by the hook; tb_lineno is not
        line = f" (line {tb.tb_lineno})" if tb is not None else ""
        msg = "".join(traceback.format_exception_only(type(e), e)).strip()
        sys.stderr.write(f"{msg}{line}\n")
        sys.stderr.flush()
        os._exit(1)

try:
    _main(_code)
except SyntaxError as e:
    sys.stderr.write(f"SyntaxError: {e.msg} (line {e.lineno})\n")
    os._exit(1)
sys.stdout.flush()
'''


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed run."""
    cpu_seconds: int = 5
    """RLIMIT_CPU (the kernel sends SIGXCPU, then kills)"""
    wall_seconds: float = 10.0
    """wall-clock timeout enforced by the parent (kills the process group)"""
    memory_mb: int = 512
    """RLIMIT_AS: address space"""
    file_size_mb: int = 8
    """RLIMIT_FSIZE: largest file the code may write"""
    max_files: int = 64
    """files the code may open for writing"""
    output_bytes: int = 20_000
    """cap on stdout + stderr together; past it the run is killed and the output truncated"""
    disk_mb: int = 64
    """quota on the bytes allocated in the scratch folder (all files together), enforced by the parent"""
    nproc: int = 16
    """RLIMIT_NPROC (applies when the child runs as an unprivileged user)"""


@dataclass
class SandboxResult:
    """What a run produced and, when it failed, a one-line message for the model."""
    stdout: str
    stderr: str
    returncode: int | None
    error: str | None = None
    """None, or: timeout, cpu, memory, threads, output, disk, blocked, file_size, exception"""
    seconds: float = 0.0
    boundary: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def observation(self) -> str:
        """The text the model reads: its output, then the error explained."""
        text = self.stdout.rstrip()
        if self.error is None:
            return text or "(no output)"
        messages = {
            "timeout": "the code ran past the wall-clock limit and was stopped",
            "cpu": "the code used up its CPU-time limit and was stopped (an infinite loop?)",
            "memory": "the code ran out of its memory limit (MemoryError)",
            "output": "the code printed more than the output limit; the output was truncated and the run stopped",
            "file_size": "the code tried to write a file larger than the file-size limit",
            "disk": "the code's files passed the scratch folder's disk quota and the run was stopped",
            "threads": "the code started more threads than its memory limit allows",
            "blocked": "the sandbox refused an operation",
        }
        detail = self.stderr.strip().splitlines()[-1][:300] if self.stderr.strip() else ""
        head = f"Error: {messages.get(self.error, 'the code raised an exception')}"
        return "\n".join(x for x in (text, f"{head}: {detail}" if detail else head) if x)


def _libc_unshare_net() -> bool:
    """unshare(CLONE_NEWNET) (root) or CLONE_NEWUSER|CLONE_NEWNET (unprivileged), in the forked child."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet, clone_newuser = 0x40000000, 0x10000000
    flags = clone_newnet if os.geteuid() == 0 else clone_newnet | clone_newuser
    return libc.unshare(flags) == 0


def _preexec(limits: Limits, scratch_uid: int | None, use_netns: bool):
    import resource

    def setup() -> None:
        if use_netns:
            _libc_unshare_net()                 # failure leaves layers 1, 2 and 4
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_mb * mb, limits.file_size_mb * mb))
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # an oversized write raises EFBIG instead
        if scratch_uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.nproc, limits.nproc))
            os.setgroups([])
            os.setgid(scratch_uid)
            os.setuid(scratch_uid)
    return setup


def _nobody() -> int | None:
    """uid of ``nobody`` when we are root (the child drops to it), else None."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return None


def _netns_available() -> bool:
    try:
        r = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=5)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_NETNS: bool | None = None
_DROP_UID: bool = True
"""False once the interpreter turned out unreadable by ``nobody`` (e.g. a Python under /root)"""


def _drain(stream, buf: bytearray, bufs: tuple[bytearray, ...], cap: int, over: threading.Event,
           lock: threading.Lock) -> None:
    """Copy ``stream`` into ``buf`` while all ``bufs`` together hold at most ``cap`` bytes; past it set ``over``."""
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            return
        with lock:
            room = cap - sum(len(b) for b in bufs)
            buf.extend(chunk[:max(room, 0)])
        if len(chunk) > room:
            over.set()
            return


def _allocated_bytes(folder: str) -> int:
    """Bytes allocated on disk under ``folder`` (st_blocks, so sparse files count what they really use)."""
    total, stack = 0, [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    total += max(st.st_blocks * 512, 0)
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
        except OSError:
            continue
    return total


def run_python(code: str, limits: Limits = Limits()) -> SandboxResult:
    """Run ``code`` in a fresh, limited OS process (see the module docstring); the last expression is printed."""
    global _NETNS, _DROP_UID
    if _NETNS is None:
        _NETNS = _netns_available()
    scratch = tempfile.mkdtemp(prefix="frontier-sandbox-")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": scratch, "SANDBOX_MAX_FILES": str(limits.max_files)}
    t0 = time.perf_counter()
    while True:
        uid = _nobody() if _DROP_UID else None
        if uid is not None:
            os.chown(scratch, uid, uid)
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP], cwd=scratch, env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    preexec_fn=_preexec(limits, uid, bool(_NETNS)), start_new_session=True,
                                    close_fds=True)
            break
        except PermissionError:
            if uid is None:
                raise
            _DROP_UID = False                  # nobody cannot run this interpreter: keep the other layers
    boundary = ["process", "rlimits", "scratch-cwd", "clean-env", "audit-hook"]
    boundary += ["uid-nobody"] if uid is not None else []
    boundary += ["netns"] if _NETNS else []
    out, err, over, lock = bytearray(), bytearray(), threading.Event(), threading.Lock()
    readers = [threading.Thread(target=_drain, args=(s, b, (out, err), limits.output_bytes, over, lock), daemon=True)
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    try:
        proc.stdin.write(code.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    error = None
    deadline, next_disk_check = t0 + limits.wall_seconds, 0.0
    while proc.poll() is None:
        if over.is_set():
            error = "output"
            break
        now = time.perf_counter()
        if now > deadline:
            error = "timeout"
            break
        if now > next_disk_check:
            next_disk_check = now + 0.05
            if _allocated_bytes(scratch) > limits.disk_mb * 2**20:
                error = "disk"
                break
        time.sleep(0.01)
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    for r in readers:
        r.join(timeout=1)
    if error is None and _allocated_bytes(scratch) > limits.disk_mb * 2**20:
        error = "disk"                         # it finished between two checks, over the quota
    shutil.rmtree(scratch, ignore_errors=True)
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if error is None:
        error = _classify(proc.returncode, stderr, over.is_set())
    return SandboxResult(stdout, stderr, proc.returncode, error, time.perf_counter() - t0, boundary)


def _classify(returncode: int, stderr: str, over: bool) -> str | None:
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if over:
        return "output"
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return "cpu"
    if returncode == 0:
        return None
    if "sandbox:" in last:
        return "blocked"
    if last.startswith("MemoryError"):
        return "memory"
    if "can't start new thread" in last:
        return "threads"
    if "File too large" in last:
        return "file_size"
    return "exception"


@tool
def python(code: str) -> str:
    """Run Python code in an isolated sandbox process and return what it prints (the last expression's value
    is printed too). Only the standard library; no network, no processes, no files outside a scratch folder.

    Args:
        code: the Python source to run
    """
    return run_python(code).observation()
