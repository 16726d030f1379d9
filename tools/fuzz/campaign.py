"""The fuzzing campaign: every reader, hypothesis-generated cases, each in a forked sandbox.

    nice -n 19 python tools/fuzz/campaign.py --cases 20000 --reader prototxt --out /tmp/fuzz
    python tools/fuzz/campaign.py --replay tests/data/fuzz_corpus --json

Why hypothesis (not atheris): the readers' interesting inputs are structured (a graph, a Caffe
net, a pickle, an image container), and hypothesis draws them from strategies that know that
structure, with byte-level mutation layered on top; atheris's coverage-guided byte mutation
needs a libFuzzer build of CPython's extensions to see inside protobuf, OpenCV and ONNX Runtime,
and rarely gets past a checksum (a PNG chunk CRC) or a protobuf length prefix by itself.
Hypothesis is generation only here: each case's outcome is recorded, never raised, so the
campaign goes on past a finding and shrinking does not run (findings are small already).

Each case is written into a fresh directory and run by a ``sandbox.Zygote``: a small process that
has imported only the fuzzed reader forks a child per case, with an address-space limit and a
CPU-time limit. A finding — any outcome but a result or a one-line CaffePortError — is kept in ``--out/<reader>/<signature hash>/`` (the files, and outcome.json),
once per signature; the totals go to ``--out/summary-<seed>-<time>.json`` (and
``partial-<reader>-<seed>.json`` as it goes) and stdout; ``--report DIR…`` adds them up.

``--replay DIR`` runs a corpus (DIR/<reader>/<case>/ directories, as written by a campaign,
with an optional expected.json: {"kind": ..., "match": regex}) and reports each case; the test
suite replays tests/data/fuzz_corpus this way.
"""
from __future__ import annotations

import os

# before numpy, Numba or ONNX Runtime load, here and in the zygote that inherits the environment:
# one thread each (one core per campaign), and Numba's workqueue layer, which survives the fork
# of a process that used it (GNU OpenMP's pool does not)
for _name, _value in (("OMP_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"),
                      ("NUMBA_NUM_THREADS", "1"), ("NUMBA_THREADING_LAYER", "workqueue")):
    os.environ.setdefault(_name, _value)

import argparse       # noqa: E402  (after the environment above, on purpose)
import collections    # noqa: E402
import hashlib        # noqa: E402
import io             # noqa: E402
import json           # noqa: E402
import re             # noqa: E402
import shutil         # noqa: E402
import sys            # noqa: E402
import tempfile       # noqa: E402
import time           # noqa: E402
import zipfile        # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sandbox        # noqa: E402
import targets        # noqa: E402

TIMEOUT = 20.0        # seconds of CPU time per case: the slowest clean case measured took 3 s
MEMORY = 1 << 30      # bytes of address space a case may add to the warmed zygote's
PROGRESS = 2000       # a progress line every this many cases


def write_case(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


def read_case(directory):
    files = {}
    for name in sorted(os.listdir(directory)):
        if name not in ("outcome.json", "expected.json"):
            with open(os.path.join(directory, name), "rb") as f:
                files[name] = f.read()
    return files


def seed_cases():
    """Valid cases per reader: {reader: [files]}."""
    import cv2
    import numpy as np

    import strategies
    from caffe_port.models import caffe_io, caffe_proto
    prototxt = strategies.CAFFEMODEL_NET.encode()
    weights = caffe_proto.NetParameter(name="weighted")
    for name, shapes in strategies.PARAM_SHAPES.items():
        layer = weights.layer.add(name=name)
        layer.blobs.extend(caffe_io.array_to_blob(np.ones(shape, np.float32) * 0.1) for shape in shapes)
    mean = caffe_io.array_to_blob(np.zeros((3, 8, 8), np.float32)).SerializeToString()
    pth = io.BytesIO()
    with zipfile.ZipFile(pth, "w") as archive:
        archive.writestr("archive/data.pkl", strategies.state_dict_pickle(
            [("w", "FloatStorage", "0", 4, 0, (2, 2), (2, 1))], legacy=False))
        archive.writestr("archive/data/0", bytes(16))
    return {"onnx": [{"model.onnx": g.SerializeToString()} for g in strategies.seed_graphs()],
            "prototxt": [{"deploy.prototxt": prototxt}],
            "caffemodel": [{"deploy.prototxt": prototxt,
                            "weights.caffemodel": weights.SerializeToString()}],
            "binaryproto": [{"mean.binaryproto": mean}], "pth": [{"weights.pth": pth.getvalue()}],
            "image": [{"image.png": cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()}]}


def zygote(reader, memory, scratch):
    """A warmed zygote for ``reader``: its valid seeds run in it once, so that each forked case
    inherits the imported modules, Caffe's schema, Pillow's plugins and the compiled kernels
    instead of paying for them."""
    started = sandbox.Zygote(reader, timeout=TIMEOUT, memory=memory)
    for files in seed_cases()[reader]:
        case = os.path.join(scratch, "seed")
        shutil.rmtree(case, ignore_errors=True)
        write_case(case, files)
        started.warm(case)
    return started


def campaign(reader, cases, out, seed, memory):
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    import strategies
    totals, refusals = collections.Counter(), collections.Counter()
    findings = {}
    scratch = tempfile.mkdtemp(prefix=f"fuzz-{reader}-")
    forker = zygote(reader, memory, scratch)
    started = time.monotonic()

    @hypothesis_seed(seed)
    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategies.STRATEGIES[reader]())
    def one(files):
        case = os.path.join(scratch, "case")
        shutil.rmtree(case, ignore_errors=True)
        write_case(case, files)
        outcome = forker.run(case)
        totals[outcome["kind"]] += 1
        done = sum(totals.values())
        if done % PROGRESS == 0:
            print(f"[{reader}] {done} cases, {dict(totals)}, "
                  f"{(time.monotonic() - started) / done * 1000:.0f} ms each", flush=True)
            with open(os.path.join(out, f"partial-{reader}-{seed}.json"), "w") as f:
                json.dump(stats(), f, indent=1)      # what a stopped campaign leaves behind
        if outcome["kind"] == "error":
            refusals[_refusal(outcome["message"])] += 1
        if outcome["kind"] in sandbox.CLEAN:
            return
        key = sandbox.signature(outcome)
        if key not in findings:
            findings[key] = dict(outcome, count=0)
            where = os.path.join(out, reader, hashlib.sha1(key.encode()).hexdigest()[:12])
            write_case(where, files)
            with open(os.path.join(where, "outcome.json"), "w") as f:
                json.dump(dict(outcome, signature=key), f, indent=1)
            print(f"[{reader}] finding {key}: {outcome.get('message', '')[:120]}", flush=True)
        findings[key]["count"] += 1

    def stats():
        return {"reader": reader, "seed": seed, "cases": sum(totals.values()),
                "outcomes": dict(totals), "findings": {k: v["count"] for k, v in findings.items()},
                "refusals": dict(refusals.most_common(15)),
                "seconds": round(time.monotonic() - started, 1)}

    one()
    forker.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return stats()


def _refusal(message):
    """A refusal's kind, for the summary: the message without paths and numbers."""
    message = re.sub(r"/\S*fuzz-\S+?/case/", "", message)
    return re.sub(r"-?\d+", "#", message)[:70]


def replay(corpus, memory):
    """Each case of a corpus through its reader's target: [{case, reader, outcome, expected,
    passed}]."""
    results = []
    for reader in sorted(os.listdir(corpus)):
        if reader not in targets.TARGETS:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            forker = zygote(reader, memory, scratch)
            for name in sorted(os.listdir(os.path.join(corpus, reader))):
                directory = os.path.join(corpus, reader, name)
                expected_path = os.path.join(directory, "expected.json")
                expected = {}
                if os.path.exists(expected_path):
                    with open(expected_path, encoding="utf-8") as f:
                        expected = json.load(f)
                case = os.path.join(scratch, name)
                write_case(case, read_case(directory))
                outcome = forker.run(case)
                passed = outcome["kind"] in sandbox.CLEAN
                if expected.get("kind"):
                    passed = passed and outcome["kind"] == expected["kind"]
                if expected.get("match"):
                    passed = passed and re.search(expected["match"],
                                                  outcome.get("message", "")) is not None
                results.append({"case": f"{reader}/{name}", "reader": reader, "outcome": outcome,
                                "expected": expected, "passed": passed})
            forker.close()
    return results


def report(directories):
    """Markdown rows (reader, cases, clean results, refusals, findings) summed over the
    campaigns' summary files in ``directories`` (a partial summary counts when its run
    stopped before its final one)."""
    finished, partial = [], {}
    for directory in directories:
        for name in sorted(os.listdir(directory)):
            if name.endswith(".json") and name.startswith(("summary-", "partial-")):
                with open(os.path.join(directory, name)) as f:
                    found = json.load(f)
                for run in found if isinstance(found, list) else [found]:
                    if name.startswith("summary-"):
                        finished.append((directory, run))
                    else:
                        partial[directory, run["reader"], run["seed"]] = run
    for directory, run in finished:          # a final summary replaces its run's partial one
        partial.pop((directory, run["reader"], run.get("seed")), None)
    rows = collections.defaultdict(collections.Counter)
    for run in [run for _, run in finished] + list(partial.values()):
        row = rows[run["reader"]]
        row["cases"] += run["cases"]
        for kind, count in run["outcomes"].items():
            row[kind] += count
    lines = ["| reader | cases | results | one-line refusals | findings (cases) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for reader in sorted(rows):
        row = rows[reader]
        found = row["cases"] - row["ok"] - row["error"]
        lines.append(f"| {reader} | {row['cases']:,} | {row['ok']:,} | {row['error']:,} | {found:,} |")
    total = sum(rows.values(), collections.Counter())
    lines.append(f"| all | {total['cases']:,} | {total['ok']:,} | {total['error']:,} | "
                 f"{total['cases'] - total['ok'] - total['error']:,} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reader", action="append", choices=sorted(targets.TARGETS),
                   help="reader(s) to fuzz (default: all)")
    p.add_argument("--cases", type=int, default=1000, help="cases per reader")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fuzz-findings", help="where findings and summary.json go")
    p.add_argument("--memory", type=int, default=MEMORY, help="bytes of address space per case")
    p.add_argument("--replay", metavar="DIR", help="run a corpus instead of generating cases")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--report", nargs="+", metavar="DIR",
                   help="print the totals of the campaigns whose --out these were, and stop")
    args = p.parse_args(argv)
    if args.report:
        print(report(args.report))
        return 0
    readers = args.reader or sorted(targets.TARGETS)
    if args.replay:
        results = replay(args.replay, args.memory)
        if args.json:
            print(json.dumps(results))
        else:
            for r in results:
                print(f"{'ok  ' if r['passed'] else 'FAIL'} {r['case']}: {r['outcome']['kind']} "
                      f"{r['outcome'].get('message', '')[:100]}")
        return 0 if all(r["passed"] for r in results) else 1
    os.makedirs(args.out, exist_ok=True)
    summary = []
    for reader in readers:
        summary.append(campaign(reader, args.cases, args.out, args.seed, args.memory))
        print(json.dumps(summary[-1]), flush=True)
    with open(os.path.join(args.out, f"summary-{args.seed}-{int(time.time())}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return 0 if not any(s["findings"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
