"""The tables of a saved run, and saved runs read back or refused in one line."""
import json

import pytest

from caffe_port.bench.report import format_tables, load_result, to_json
from caffe_port.errors import InputError


def test_tables_of_a_saved_run(tiny_run):
    _, path, _ = tiny_run
    result = load_result(path)
    text = format_tables(result, profile=True)
    assert "1 thread(s) for ONNX Runtime, Numba, BLAS and PyTorch" in text
    for column in ("ORT forward", "Net forward", "backward", "PyTorch fwd+grad", "first run",
                   "top-5 one pass", "five passes", "conv GFLOP/s", "sgemm GFLOP/s", "forward peak",
                   "backward peak", "kept", "2nd pass peak", "load avg", "vs floor", "vs limit"):
        assert column in text, column
    assert "free_size.onnx batch 2 cpu: failed" in text
    assert "Backward profile: lenet batch 2 cpu" in text
    assert "one notebook process (torch imported and used first" in text
    for column in ("notebook fwd+bwd", "notebook PyTorch", "nb/sep", "PyTorch before Net", "after/before"):
        assert column in text, column
    assert "PyTorch peer" not in text                # it ran, and did not fail
    assert "Targets" not in text                     # measurements and ratios, no verdicts


def test_skipped_or_failed_peer_in_one_line(tiny_run):
    result, _, _ = tiny_run
    skipped = dict(result, torch_peer_skipped="torch is not installed; pip install torch")
    lines = format_tables(skipped).splitlines()
    assert [line for line in lines if "PyTorch peer" in line] == [
        "PyTorch peer skipped: torch is not installed; pip install torch"]
    failed = json.loads(to_json(result))
    row = next(r for r in failed["configs"] if "error" not in r)
    row["torch"] = {"error": "RuntimeError: out of memory"}
    lines = format_tables(failed).splitlines()
    assert [line for line in lines if "PyTorch peer" in line] == [
        "lenet batch 2 cpu: PyTorch peer failed: RuntimeError: out of memory"]


def test_json_round_trip(tiny_run, tmp_path):
    result, _, _ = tiny_run
    path = tmp_path / "again.json"
    path.write_text(to_json(result))
    assert load_result(path) == result


def test_what_is_not_a_saved_run(tmp_path):
    with pytest.raises(InputError, match="cannot read a saved benchmark"):
        load_result(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(InputError, match="cannot read a saved benchmark"):
        load_result(tmp_path / "text.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/2"}))
    with pytest.raises(InputError, match="not a caffe_port benchmark result \\(schema 'something/2'\\)"):
        load_result(tmp_path / "other.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not a caffe_port benchmark result \\(schema None\\)"):
        load_result(tmp_path / "list.json")
