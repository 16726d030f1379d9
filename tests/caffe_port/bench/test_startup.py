"""Wall time of a process to its exit and to the PNG it writes; the sample image is where the
package data is."""
import os
import sys

import pytest

from caffe_port.bench.startup import SAMPLE_IMAGE, timed_process


def test_timed_process_to_png(tmp_path):
    code = ("import time, sys; time.sleep(0.05); open(sys.argv[1] + '/a.png', 'wb').write(b'x'); "
            "time.sleep(0.3)")
    exit_s, png_s, _ = timed_process([sys.executable, "-c", code, str(tmp_path)], dict(os.environ), str(tmp_path))
    assert 0.04 <= png_s < exit_s and exit_s >= 0.35
    os.remove(tmp_path / "a.png")
    with pytest.raises(RuntimeError, match="wrote no PNG"):
        timed_process([sys.executable, "-c", "pass"], dict(os.environ), str(tmp_path))


def test_timed_process_failure_is_its_last_line():
    code = "import sys; print('first', file=sys.stderr); sys.exit('the last line')"
    with pytest.raises(RuntimeError, match="^the last line$"):
        timed_process([sys.executable, "-c", code], dict(os.environ))


def test_sample_image_is_the_packaged_one():
    assert os.path.isfile(SAMPLE_IMAGE) and os.path.basename(os.path.dirname(SAMPLE_IMAGE)) == "data"
