"""One fuzz case in a forked child, under a time and an address-space limit.

The parent has imported the readers (and warmed the Numba kernels) once; each case is a
``fork()``, so a case costs its own work, not an interpreter start. In the child,
``RLIMIT_AS`` caps the address space at what the parent already maps plus ``memory`` bytes: an
allocation beyond that fails inside the child (numpy's MemoryError, or a signal from native
code), never on the machine. ``RLIMIT_CPU`` gives the child ``timeout`` seconds of CPU time (a
hang that computes ends in SIGXCPU); the parent waits at most ``WALL_FACTOR`` times as long in
wall-clock time (a hang that waits), then kills the child. CPU time, not wall time, is what a
busy machine does not stretch: a niced campaign on shared cores sees the same verdicts.

An outcome is a dict: ``kind`` is one of

    ok         the reader returned (``detail``: what the check saw)
    error      a CaffePortError in one line (``message``)
    multiline  a CaffePortError whose message spans lines: not what the CLI may print
    traceback  any other exception (``type``, ``message``, ``where``: the innermost project frame)
    memory     MemoryError: an allocation the reader did not check first
    signal     the child died of a signal (``signal``)
    timeout    the child ran past its CPU time (SIGXCPU) or wall-clock time and was killed
    exit       the child exited without reporting (``status``)

``ok`` and ``error`` are the clean ones; every other kind is a finding.
"""
from __future__ import annotations

import faulthandler
import json
import os
import resource
import select
import signal
import time
import traceback

CLEAN = ("ok", "error")
WALL_FACTOR = 6       # wall-clock allowance per second of CPU time
PROJECT_DIRS = ("caffe_port", "models", "kernels")


def address_space() -> int:
    """Bytes of virtual address space this process maps now (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def innermost_project_frame(tb) -> str:
    """'file.py:line in function' of the deepest frame in the project's own packages (where a
    fix belongs), else the deepest frame."""
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if any(f"/{d}/" in f.filename for d in PROJECT_DIRS)]
    frame = (ours or frames)[-1]
    parts = frame.filename.split(os.sep)
    short = os.sep.join(parts[-2:])
    return f"{short}:{frame.lineno} in {frame.name}"


def _classify(exc) -> dict:
    from caffe_port.errors import CaffePortError
    if isinstance(exc, CaffePortError):
        message = str(exc)
        return {"kind": "multiline" if "\n" in message.strip() else "error", "message": message[:500]}
    kind = "memory" if isinstance(exc, MemoryError) else "traceback"
    return {"kind": kind, "type": type(exc).__name__, "message": str(exc)[:300],
            "where": innermost_project_frame(exc.__traceback__)}


def _child(target, case, write_fd, memory, timeout):
    faulthandler.disable()             # a signal is reported by the parent, not dumped here
    limit = address_space() + memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seconds = max(1, int(timeout))
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        outcome = {"kind": "ok", "detail": target(case)}
    except BaseException as exc:      # the point of the sandbox: every way out is reported
        outcome = _classify(exc)
    try:
        data = json.dumps(outcome, default=str).encode()
    except MemoryError:
        data = b'{"kind": "memory", "type": "MemoryError", "message": "", "where": "reporting"}'
    view = memoryview(data)
    while view:
        written = os.write(write_fd, view)
        view = view[written:]


def run(target, case, *, timeout=20.0, memory=2 << 30, wall=None) -> dict:
    """Run ``target(case)`` in a forked child with ``timeout`` seconds of CPU time (``wall``
    seconds of wall-clock time, by default WALL_FACTOR times that) and ``memory`` bytes of address
    space beyond the parent's; returns its outcome (module docstring)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                       # the child: report and leave without running atexit hooks
        os.close(read_fd)
        status = 0
        try:
            _child(target, case, write_fd, memory, timeout)
        except BaseException:
            status = 3
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks, deadline, timed_out = [], time.monotonic() + (wall or WALL_FACTOR * timeout), False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if ready:
                chunk = os.read(read_fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"kind": "timeout", "seconds": timeout}
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
        return {"kind": "timeout", "seconds": timeout}         # past the CPU limit
    if os.WIFSIGNALED(status):
        return {"kind": "signal", "signal": signal.Signals(os.WTERMSIG(status)).name}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"kind": "exit", "status": os.WEXITSTATUS(status)}


def signature(outcome: dict) -> str:
    """What makes two findings the same bug: the kind, the exception type and where it was raised
    (messages differ with the values)."""
    if outcome["kind"] in ("traceback", "memory"):
        return f"{outcome['kind']}:{outcome['type']}@{outcome['where']}"
    if outcome["kind"] == "multiline":
        return f"multiline:{outcome['message'].splitlines()[0][:60]}"
    return outcome["kind"]


class Zygote:
    """The parent the cases are forked from, as a process of its own: it imports only the
    fuzzed reader's modules (not hypothesis, nor the generators' ONNX and Caffe builders), so
    each fork copies less (a fork of the campaign process cost 8–12 ms of system time, most of
    the cheap readers' cases). One at a time: the campaign waits for each answer.

        zygote = Zygote("pth", timeout=20, memory=1 << 30)
        zygote.warm(seed_directory)        # a valid case, run in the zygote itself
        outcome = zygote.run(case_directory)
    """

    def __init__(self, reader, *, timeout, memory):
        import subprocess
        import sys
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), reader, str(timeout), str(memory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def _ask(self, verb, case):
        self.process.stdin.write(f"{verb} {case}\n")
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the zygote died (exit status {self.process.wait()})")
        return json.loads(answer)

    def warm(self, case):
        return self._ask("warm", case)

    def run(self, case):
        return self._ask("run", case)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def _serve(reader, timeout, memory):
    """The zygote's loop: 'warm DIR' runs a case here, 'run DIR' in a forked sandbox; one JSON
    line answers each."""
    import sys
    import targets
    target = targets.TARGETS[reader]
    # the answers get a descriptor of their own: whatever a reader prints (ONNX Runtime's
    # Python layer prints to stdout) goes to stderr, in this process and in every child
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        verb, case = line.rstrip("\n").split(" ", 1)
        if verb == "warm":
            target(case)                     # a valid seed: an exception here is a bug to see
            outcome = {"kind": "ok"}
        else:
            outcome = run(target, case, timeout=timeout, memory=memory)
        answers.write(json.dumps(outcome, default=str) + "\n")
        answers.flush()


if __name__ == "__main__":         # started by Zygote, with the campaign's environment
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    _serve(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
