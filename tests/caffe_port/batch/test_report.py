"""report.html: a static page whose data are the folder's rows, its pictures on disk beside it;
a screenshot in headless Chromium where it is installed."""
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import cv2
import pytest

from caffe_port.batch import job
from caffe_port.methods import GradCAM, GuidedBackprop, Saliency
from caffe_port.preprocess import preset
from helpers.image_sets import write_bad_files, write_photos


class Page(HTMLParser):
    """The page's element names, script text and local references."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self.external = [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_script = tag == "script"
        for name, value in attrs:
            if name in ("src", "href") and value and re.match(r"[a-z]+://", value):
                self.external.append(value)

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory, small_model):
    root = tmp_path_factory.mktemp("report")
    photos = write_photos(str(root / "photos"), 4)
    write_bad_files(str(root / "photos" / "bad"), photos[:2])
    out = str(root / "out")
    table = job.run([str(root / "photos")], out, model=small_model, preset=preset("torchvision", crop=67, resize=70),
                    methods={"saliency": Saliency, "gradcam": GradCAM, "guided": GuidedBackprop}, top_k=2,
                    localize=True, progress=False, report=True)
    return out, table


def records_of(page_text):
    return json.loads(re.search(r"const RECORDS = (.*);\n", page_text).group(1))


def test_the_page_holds_every_image_with_its_maps_and_needs_no_server(report):
    out, table = report
    with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
        text = f.read()
    page = Page()
    page.feed(text)
    assert {"table", "input", "select", "script"} <= set(page.tags) and page.external == []
    records = records_of(text)
    assert len(records) == len(set(table["path"].to_pylist())) == 8
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) == 4 and all(len(r["maps"]) == 3 * 2 for r in ok)
    assert sorted(r["status"].split(": ", 1)[1] for r in records if r["status"] != "ok") == sorted(
        ["not an image file (it is empty)", "not an image file OpenCV can read",
         "truncated JPEG file (no end-of-image marker)",
                                                     "truncated PNG file (no IEND chunk)"])
    for r in ok:
        for picture in [r["photo"]] + [m["picture"] for m in r["maps"]]:
            image = cv2.imread(os.path.join(out, picture))
            assert image is not None and max(image.shape[:2]) == 160
    summary = json.loads(re.search(r"const SUMMARY = (.*);\n", text).group(1))
    assert (summary["images"], summary["ok"], summary["failed"], summary["maps"]) == (8, 4, 4, 24)


def test_a_report_again_reuses_its_thumbnails(report, tmp_path):
    out, table = report
    from caffe_port.batch.report import write_report
    pictures = [os.path.join(root, f) for root, _, files in os.walk(os.path.join(out, "report")) for f in files]
    before = {p: os.stat(p).st_mtime_ns for p in pictures}
    write_report(out, table)
    assert {p: os.stat(p).st_mtime_ns for p in pictures} == before


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_headless_chromium_draws_the_table(report, tmp_path):
    out, _ = report
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1280,900",
                    "file://" + os.path.join(os.path.abspath(out), "report.html")],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          "file://" + os.path.join(os.path.abspath(out), "report.html")],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    drawn = re.findall(r'<tr class="(failed)?" data-status="([^"$]*)"', dom)   # not the script's template
    assert len(drawn) == 8 and sum(status == "ok" for _, status in drawn) == 4
    assert "8 of 8 images" in dom
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[:2] == (900, 1280) and picture.std() > 10
