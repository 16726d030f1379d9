"""tools/gpu_check.sh: valid bash, and it never writes into a folder that already holds files."""
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.sh"


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_a_folder_with_files_is_refused_untouched(tmp_path):
    (tmp_path / "bench.json").write_text("earlier results")
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": "false"})
    assert done.returncode == 2
    assert "already holds files" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]
    assert (tmp_path / "bench.json").read_text() == "earlier results"
