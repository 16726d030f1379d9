"""DIR/report.html: a static page of a batch folder, opened from disk (no server, nothing fetched).

Per image: the photograph, each map over it (signed images as themselves) with its box (the
photograph alone under the box when the run kept no maps), the classes with their scores and
probabilities, the status and the seconds it took; a summary at the top (images, failures, the
most frequent top classes, throughput). The rows are data in the page (JSON) drawn by a few
lines of script: sortable by clicking a column's head, filterable by class (index or name), by a
least score and by status, a page of PAGE images at a time.

The pictures are JPEG thumbnails under DIR/report/ (the maps' shards), written atomically; a
thumbnail already there is kept, so a report after a rerun draws only the new images.
"""
from __future__ import annotations

import html
import json
import os
from collections import Counter

import cv2
import numpy as np

from caffe_port import render
from caffe_port.batch.store import OK, REPORT, REPORT_FILES, SETTINGS, image_id, map_name
from caffe_port.errors import InputError
from caffe_port.preprocess import load_image

THUMBNAIL = 160                 # pixels, the longer side
PAGE = 100                      # images a page
PERCENTILE = render.GRADIENT.percentile


def _jpeg(picture) -> bytes:
    rgb = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise InputError("OpenCV could not encode a report thumbnail as JPEG")
    return encoded.tobytes()


def _thumbnail(directory, name, make):
    """report/<name>.jpg relative to DIR, made by ``make()`` unless it is there already."""
    relative = f"{REPORT_FILES}/{name}.jpg"
    target = os.path.join(directory, relative)
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        render.write_bytes(target, _jpeg(render.fit_tile(make(), THUMBNAIL)), force=True)
    return relative


def _map_picture(photo, saliency_map, box, channel_order):
    if saliency_map is None:                # a run that kept no maps: the box on the photograph
        picture = photo
    elif saliency_map.ndim == 3:
        picture = render.signed(saliency_map, channel_order, PERCENTILE)["all"]
    else:
        picture = render.overlay(photo, saliency_map, percentile=PERCENTILE)
    return render.draw_box(picture, tuple(box), thickness=max(2, round(max(photo.shape[:2]) / 150))) \
        if box is not None else picture


def image_records(directory, table, channel_order="RGB"):
    """One record per image (its rows grouped, thumbnails made), in the table's order."""
    by_image = {}
    for row in table.to_pylist():
        by_image.setdefault(row["path"], []).append(row)
    records = []
    for path, rows in by_image.items():
        first = rows[0]
        record = {"image": first["image"], "status": first["status"], "seconds": first["seconds"],
                  "label": first["label"], "size": [first["width"], first["height"]], "photo": None,
                  "maps": []}
        if first["status"] == OK:
            photo = None

            def the_photo():
                nonlocal photo
                if photo is None:
                    photo = load_image(path)
                return photo
            try:
                digest = image_id(path)
                record["photo"] = _thumbnail(directory, f"{digest[:3]}/{digest}_photo", the_photo)
                for row in rows:
                    name = row["map"] or map_name(path, row["method"], row["class"])
                    saliency_map = np.load(os.path.join(directory, row["map"])) if row["map"] else None
                    picture = _thumbnail(directory, os.path.splitext(name)[0].replace("maps/", "", 1),
                                         lambda: _map_picture(the_photo(), saliency_map, row["box"], channel_order))
                    record["maps"].append({"method": row["method"], "rank": row["rank"], "class": row["class"],
                                           "name": row["name"], "score": row["score"], "prob": row["prob"],
                                           "box": row["box"], "picture": picture})
            except (OSError, ValueError, InputError) as e:     # the photograph moved or a map is unreadable
                record["status"] = f"report: {e}"
        records.append(record)
    return records


def summary(records, settings):
    ok = [r for r in records if r["status"] == OK]
    top = Counter(f"{m['class']} {m['name']}" for r in ok for m in r["maps"] if m["rank"] == 1)
    seconds = sum(r["seconds"] or 0.0 for r in records)
    methods = sorted({m["method"] for r in ok for m in r["maps"]})
    return {"images": len(records), "ok": len(ok), "failed": len(records) - len(ok),
            "maps": sum(len(r["maps"]) for r in ok), "methods": methods,
            "top_classes": top.most_common(10), "seconds_per_image": seconds / len(records) if records else 0.0,
            "model": settings.get("model", {}), "preset": settings.get("preset", {}).get("name")}


def write_report(directory, table) -> str:
    """Write DIR/report.html (and its thumbnails) for ``table`` (the folder's index); its path."""
    directory = os.fspath(directory)
    with open(os.path.join(directory, SETTINGS), encoding="utf-8") as f:
        settings = json.load(f)
    channel_order = settings.get("preset", {}).get("channel_order", "RGB")
    records = image_records(directory, table, channel_order)
    page = PAGE_TEMPLATE.replace("@SUMMARY@", _json(summary(records, settings))) \
                        .replace("@RECORDS@", _json(records)).replace("@PAGE@", str(PAGE)) \
                        .replace("@TITLE@", html.escape(os.path.basename(os.path.abspath(directory))))
    path = os.path.join(directory, REPORT)
    render.write_bytes(path, page.encode("utf-8"), force=True)
    return path


def _json(value) -> str:
    # inside <script>: "</" would end the element
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>caffe-port batch: @TITLE@</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em;margin:0 0 .4em}
#summary{background:#f4f4f4;padding:.6em 1em;border-radius:6px;margin-bottom:.8em}
#summary span{margin-right:1.6em}
#filters{margin:.6em 0}#filters label{margin-right:1.2em}
table{border-collapse:collapse;width:100%}
th{cursor:pointer;text-align:left;background:#e8e8e8;padding:.3em .5em;position:sticky;top:0}
th.sorted::after{content:attr(data-dir)}
td{border-top:1px solid #ddd;padding:.4em .5em;vertical-align:top}
figure{display:inline-block;margin:0 .4em .3em 0;text-align:center;font-size:12px}
figure img{display:block;max-width:160px;max-height:160px}
.failed{color:#b00020}.muted{color:#777}
#pager button{margin:.6em .3em 0 0}
</style></head><body>
<h1>caffe-port batch: @TITLE@</h1>
<div id="summary"></div>
<div id="filters">
<label>class <input id="f-class" size="16" placeholder="index or name"></label>
<label>score &ge; <input id="f-score" size="6" type="number" step="any"></label>
<label>status <select id="f-status"><option value="">all</option><option value="ok">ok</option>
<option value="failed">failed</option></select></label>
<span id="count" class="muted"></span></div>
<table><thead><tr><th data-key="image">image</th><th data-key="top">top class</th>
<th data-key="score">score</th><th data-key="prob">prob</th><th>maps</th>
<th data-key="status">status</th><th data-key="seconds">seconds</th></tr></thead>
<tbody id="rows"></tbody></table>
<div id="pager"></div>
<script>
const SUMMARY = @SUMMARY@;
const RECORDS = @RECORDS@;
const PAGE = @PAGE@;
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
const topMap = r => r.maps.find(m => m.rank === 1) || null;
const key = {image: r => r.image, top: r => topMap(r) ? topMap(r).name : "", score: r => topMap(r) ? topMap(r).score : -Infinity,
             prob: r => topMap(r) ? topMap(r).prob : -Infinity, status: r => r.status, seconds: r => r.seconds || 0};
let sortKey = null, sortDir = 1, page = 0;
function showSummary() {
  const s = SUMMARY, classes = s.top_classes.map(([c, n]) => `${esc(c)} (${n})`).join(", ");
  document.getElementById("summary").innerHTML =
    `<span><b>${s.images}</b> images</span><span><b>${s.ok}</b> ok</span>` +
    `<span class="${s.failed ? "failed" : ""}"><b>${s.failed}</b> failed</span><span><b>${s.maps}</b> maps ` +
    `(${esc(s.methods.join(", "))})</span><span>${s.seconds_per_image.toFixed(3)} s per image</span>` +
    `<span>model ${esc(s.model.file || s.model.embedded || "bytes")}, preset ${esc(s.preset)}</span>` +
    `<div>most frequent top classes: ${classes || "none"}</div>`;
}
function matches(r) {
  const c = document.getElementById("f-class").value.trim().toLowerCase();
  const least = parseFloat(document.getElementById("f-score").value);
  const status = document.getElementById("f-status").value;
  if (status === "ok" && r.status !== "ok") return false;
  if (status === "failed" && r.status === "ok") return false;
  if (c && !r.maps.some(m => String(m.class) === c || m.name.toLowerCase().includes(c))) return false;
  if (!isNaN(least) && !r.maps.some(m => m.score >= least)) return false;
  return true;
}
function cell(r) {
  return r.maps.map(m => `<figure><img loading="lazy" src="${esc(m.picture)}" alt="${esc(m.method)}">` +
    `${esc(m.method)} #${m.rank}: ${m.class} ${esc(m.name.split(",")[0])}<br>score ${m.score.toFixed(3)}, ` +
    `p ${m.prob.toFixed(3)}${m.box ? `<br>box ${m.box.join(", ")}` : ""}</figure>`).join("");
}
function draw() {
  let shown = RECORDS.filter(matches);
  if (sortKey) shown = shown.slice().sort((a, b) => { const x = key[sortKey](a), y = key[sortKey](b);
                                                      return (x < y ? -1 : x > y ? 1 : 0) * sortDir; });
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  page = Math.min(page, pages - 1);
  document.getElementById("count").textContent = `${shown.length} of ${RECORDS.length} images`;
  document.getElementById("rows").innerHTML = shown.slice(page * PAGE, (page + 1) * PAGE).map(r => {
    const t = topMap(r);
    return `<tr class="${r.status === "ok" ? "" : "failed"}" data-status="${esc(r.status)}">` +
      `<td>${r.photo ? `<img loading="lazy" src="${esc(r.photo)}" alt="photo"><br>` : ""}${esc(r.image)}` +
      `${r.label !== null ? `<br><span class="muted">label ${r.label}</span>` : ""}</td>` +
      `<td>${t ? `${t.class} ${esc(t.name)}` : ""}</td><td>${t ? t.score.toFixed(3) : ""}</td>` +
      `<td>${t ? t.prob.toFixed(3) : ""}</td><td>${cell(r)}</td><td>${esc(r.status)}</td>` +
      `<td>${(r.seconds || 0).toFixed(3)}</td></tr>`; }).join("");
  document.getElementById("pager").innerHTML = pages > 1 ? Array.from({length: pages}, (_, i) =>
    `<button ${i === page ? "disabled" : ""} data-page="${i}">${i + 1}</button>`).join("") : "";
}
document.querySelectorAll("th[data-key]").forEach(th => th.addEventListener("click", () => {
  sortDir = sortKey === th.dataset.key ? -sortDir : 1; sortKey = th.dataset.key;
  document.querySelectorAll("th").forEach(h => h.classList.remove("sorted"));
  th.classList.add("sorted"); th.dataset.dir = sortDir > 0 ? " \\u25b2" : " \\u25bc"; draw(); }));
["f-class", "f-score", "f-status"].forEach(id => document.getElementById(id).addEventListener("input", () => {
  page = 0; draw(); }));
document.getElementById("pager").addEventListener("click", e => {
  if (e.target.dataset.page) { page = +e.target.dataset.page; draw(); } });
showSummary(); draw();
</script></body></html>
"""
