"""tools/fuzz: the sandbox tells every way a case can go wrong, and the seed corpus — each finding
of the campaign, kept after its fix, plus the cases the issue named — replays clean, each with
the refusal it now gets."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from caffe_port.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAMPAIGN = os.path.join(ROOT, "tools", "fuzz", "campaign.py")
CORPUS = os.path.join(ROOT, "tests", "data", "fuzz_corpus")
CASES = sorted(f"{reader}/{case}" for reader in os.listdir(CORPUS)
               for case in os.listdir(os.path.join(CORPUS, reader)))

_spec = importlib.util.spec_from_file_location("fuzz_sandbox",
                                               os.path.join(ROOT, "tools", "fuzz", "sandbox.py"))
sandbox = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sandbox)


# --- the sandbox ---------------------------------------------------------------------------------

def _clean_refusal(_):
    raise InputError("one line")


def _two_lines(_):
    raise InputError("one\ntwo")


def _bug(_):
    return 1 // 0


def _allocates(_):
    return np.ones(8 << 30, np.uint8).sum()      # 8 GiB under a 256 MiB allowance


def _crashes(_):
    os.kill(os.getpid(), signal.SIGSEGV)


def _waits(_):
    time.sleep(60)


def _spins(_):
    while True:
        pass


@pytest.mark.parametrize("target, kind", [
    (lambda case: {"case": case}, "ok"), (_clean_refusal, "error"), (_two_lines, "multiline"),
    (_bug, "traceback"), (_allocates, "memory"), (_crashes, "signal"), (_waits, "timeout"), (_spins, "timeout")])
def test_sandbox_reports_each_way_out(target, kind):
    # 1 s of CPU time ends the spinning case (SIGXCPU); 3 s of wall-clock time the waiting one
    outcome = sandbox.run(target, "x", timeout=1, memory=256 << 20, wall=3)
    assert outcome["kind"] == kind, outcome
    assert (kind in sandbox.CLEAN) == (kind in ("ok", "error"))
    if kind == "traceback":
        assert outcome["type"] == "ZeroDivisionError" and "test_fuzz_corpus.py" in outcome["where"]
        assert sandbox.signature(outcome) == f"traceback:ZeroDivisionError@{outcome['where']}"
    if kind == "signal":
        assert outcome["signal"] == "SIGSEGV"


# --- the corpus ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def replayed():
    """One replay of the whole corpus (each case forked from one warmed process), each case
    under 512 MiB of address space beyond the parent's: well below what the refused cases ask
    for (a 65535² JPEG at 1/8 is 1.07 GB), well above what the accepted ones use."""
    proc = subprocess.run([sys.executable, CAMPAIGN, "--replay", CORPUS, "--json",
                           "--memory", str(512 << 20)],
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.returncode, {r["case"]: r for r in json.loads(lines[-1])}


def test_corpus_covers_every_reader():
    assert {case.split("/")[0] for case in CASES} == {
        "onnx", "prototxt", "caffemodel", "binaryproto", "pth", "image"}


@pytest.mark.parametrize("case", CASES)
def test_corpus_case_replays_clean(replayed, case):
    returncode, results = replayed
    result = results[case]
    with open(os.path.join(CORPUS, case, "expected.json"), encoding="utf-8") as f:
        expected = json.load(f)
    assert expected["finding"], "each case says what it found before its fix"
    assert result["passed"], (f"{case} ({expected['finding']}): got {result['outcome']}, "
                              f"expected {expected}")
    if expected["kind"] == "error":
        assert "\n" not in result["outcome"]["message"]


def test_replay_exit_status_says_all_passed(replayed):
    returncode, results = replayed
    assert returncode == (0 if all(r["passed"] for r in results.values()) else 1)
