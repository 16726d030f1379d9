"""The output folder of ``caffe-port batch``: settings, maps, the journal of committed rows and
the index, written so that a run killed at any moment loses nothing it committed.

    DIR/batch.json              the settings (``Settings.fingerprint``): a rerun with other
                                settings is refused unless --force
    DIR/maps/abc/<stem>-<id>_<method>_c<class>.npy
                                each map in its photograph's pixels; <id> is a digest of the
                                image's resolved path and ``abc`` its first three hex digits, so
                                4096 folders share the maps (50,000 images × 15 maps: ~180 files
                                a folder)
    DIR/parts/<commit>.parquet  the journal: one file per committed batch of images
    DIR/index.parquet           every row, one per image × method × class: the parts compacted
    DIR/.lock                   held (flock) while a run writes: one writer at a time
    DIR/report.html, report/    --report's page and thumbnails (report.py)
    DIR/evaluation.parquet      ``caffe-port evaluate``'s rows: boxes scored against ground truth
                                (caffe_port.evaluation), rewritten by each evaluation

**Commit protocol** (``Store.commit``, one batch at a time, single writer):

    1. each map goes to a temporary file in its folder, is fsync'ed and renamed to its name
       (a batch's maps side by side, in threads); the folders that got maps are fsync'ed
    2. the batch's rows go to a temporary file, fsync'ed, renamed to parts/<commit>.parquet;
       parts/ is fsync'ed — this rename is the commit

A row is therefore never on disk before its map; a kill before step 2's rename leaves maps
without rows (rewritten by the rerun) and temporary files (in parts/, maps/*/, report/*/ and
DIR itself: swept when the folder is next opened); after it, the batch is done. A batch whose writes fail (a full disk) raises StoreError
before step 2: the batches committed before stay committed.

**Compaction** (``Store.compact``, at the end of a run, and when a rerun opens the folder): the
index and the parts are read, the rows of each image's latest commit kept (a rerun that redoes an
image supersedes its older rows), and the result written to index.parquet (temporary file,
fsync, rename) with the last commit it holds in its metadata; then the parts it holds are
removed. A kill between the rename and the removals leaves parts the index already holds; they
are recognised by their commit number and skipped. ``read_index`` reads index + parts the same
way, so a folder whose run was killed reads complete up to its last commit.

**Resuming**: an image is done when its latest commit's rows are ``ok`` and each of their maps
exists; done images are skipped, everything else (new, failed before, or a map lost) is
computed again. Images that failed are retried on every rerun.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import io
import json
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from caffe_port.errors import CaffePortError, InputError
from caffe_port.render import write_bytes

SETTINGS = "batch.json"
INDEX = "index.parquet"
PARTS = "parts"
MAPS = "maps"
LOCK = ".lock"
REPORT = "report.html"                # --report's page (report.py)
REPORT_FILES = "report"               # and its thumbnails
EVALUATION = "evaluation.parquet"     # caffe-port evaluate's rows (caffe_port.evaluation)
TRASH = ".discarded"
TEMPORARY = ".caffe_port-*.tmp"       # render.write_bytes's temporary names
FORMAT = 1
OK = "ok"

SCHEMA = pa.schema([
    ("image", pa.string()),           # as given (argument, walked path, list line)
    ("path", pa.string()),            # resolved absolute path: the image's identity
    ("method", pa.string()),
    ("rank", pa.int32()),             # 1 … K among the image's classes (null when it failed)
    ("class", pa.int64()),
    ("name", pa.string()),
    ("score", pa.float64()),          # S_c, pre-softmax
    ("prob", pa.float64()),           # softmax at c
    ("label", pa.int64()),            # ground truth, from a list
    ("map", pa.string()),             # the .npy, relative to DIR (null: maps not kept)
    ("box", pa.list_(pa.int32(), 4)),   # x0, y0, x1, y1 half-open, photograph pixels
    ("status", pa.string()),          # "ok" or the one-line error
    ("seconds", pa.float64()),        # the image's: decode … maps and boxes
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("commit", pa.int64()),           # the part that committed the row
])


class StoreError(CaffePortError):
    """The output folder cannot be written (a full disk, permissions): what was committed stays."""


def image_id(path) -> str:
    return hashlib.sha1(os.fsencode(path)).hexdigest()[:16]


def map_name(path, method, class_index) -> str:
    """maps/abc/<stem>-<id>_<method>_c<class>.npy, relative to DIR (module docstring)."""
    digest = image_id(path)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(os.path.basename(path))[0])[:60] or "image"
    return f"{MAPS}/{digest[:3]}/{stem}-{digest}_{method}_c{class_index}.npy"


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_failed(directory, error):
    return StoreError(f"{directory}: cannot write {error.filename or 'a file'} ({error.strerror or error}); "
                      f"the images committed before are kept: rerun the same command to go on")


class Store:
    """An output folder opened for one run (module docstring). Use as a context manager: the
    lock is released on leaving.

    directory:   DIR
    fingerprint: the run's settings (JSON values)
    methods:     the method names, for the rows of an image that failed (one per method)
    force:       discard an earlier run's results (its settings may differ) and start over
    keep_maps:   write the maps (False: rows only, their ``map`` null)
    """

    def __init__(self, directory, fingerprint, methods, force=False, keep_maps=True):
        self.directory = os.fspath(directory)
        self.methods = tuple(methods)
        self.keep_maps = bool(keep_maps)
        self._lock = None
        self.fingerprint = {"format": FORMAT, **fingerprint}
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise InputError(f"--out {self.directory}: exists and is not a directory")
        self._refuse_foreign()
        try:
            os.makedirs(self.directory, exist_ok=True)
            self._lock = open(os.path.join(self.directory, LOCK), "a+")
        except OSError as e:
            raise InputError(f"--out {self.directory}: cannot create the output folder ({e.strerror})") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise InputError(f"--out {self.directory}: another caffe-port batch is writing to it") from None
        try:
            self._open(force)
        except BaseException:
            self.close()
            raise

    def _refuse_foreign(self):
        """A folder that holds files and no batch.json is someone else's: not a file is added."""
        if not os.path.isdir(self.directory) or os.path.exists(self._path(SETTINGS)):
            return
        ours = {SETTINGS, INDEX, PARTS, MAPS, LOCK, TRASH, REPORT, REPORT_FILES, EVALUATION}
        foreign = sorted(name for name in os.listdir(self.directory) if name not in ours)
        if foreign:
            raise InputError(f"--out {self.directory}: is not empty and not a caffe-port batch "
                             f"folder (it holds {foreign[0]!r}); choose a new or empty folder")

    def _path(self, *parts):
        return os.path.join(self.directory, *parts)

    def _open(self, force):
        shutil.rmtree(self._path(TRASH), ignore_errors=True)      # a discard a kill interrupted
        settings_file = self._path(SETTINGS)
        if os.path.exists(settings_file):
            try:
                with open(settings_file, encoding="utf-8") as f:
                    earlier = json.load(f)
            except (OSError, ValueError):
                earlier = None
            if earlier != self.fingerprint and not force:
                raise InputError(f"--out {self.directory}: holds the results of other settings "
                                 f"({self._difference(earlier)}); pass --force to discard them and "
                                 f"start over, or choose another --out")
            if force:
                self._discard()
        try:
            os.makedirs(self._path(PARTS), exist_ok=True)
            os.makedirs(self._path(MAPS), exist_ok=True)
            for pattern in ((PARTS, TEMPORARY), (MAPS, "*", TEMPORARY), (REPORT_FILES, "*", TEMPORARY),
                            (TEMPORARY,)):
                for temporary in glob.glob(self._path(*pattern)):
                    os.remove(temporary)
            if not os.path.exists(settings_file):
                write_bytes(settings_file, json.dumps(self.fingerprint, indent=1).encode(), force=True)
        except OSError as e:
            raise _write_failed(self.directory, e) from None
        self._commit = self._last_commit()
        self._made = set()
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="caffe-port-store")

    def _difference(self, earlier):
        if not isinstance(earlier, dict):
            return f"{SETTINGS} cannot be read"
        changed = [key for key in self.fingerprint if earlier.get(key) != self.fingerprint[key]]
        return "different " + ", ".join(changed) if changed else "a different format"

    def _discard(self):
        """--force: the earlier results move aside (each rename atomic), the settings are
        replaced, then they are deleted; a kill in between leaves a folder that opens cleanly."""
        trash = self._path(TRASH)
        os.makedirs(trash, exist_ok=True)
        for name in (INDEX, PARTS, MAPS, REPORT, REPORT_FILES, EVALUATION):
            if os.path.exists(self._path(name)):
                os.replace(self._path(name), os.path.join(trash, name))
        write_bytes(self._path(SETTINGS), json.dumps(self.fingerprint, indent=1).encode(), force=True)
        shutil.rmtree(trash, ignore_errors=True)

    def close(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True)
        if self._lock is not None:
            self._lock.close()          # releases the flock
            self._lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- reading ----------------------------------------------------------------------------------

    def _parts(self):
        """[(commit, file)] of the journal, in commit order."""
        found = []
        for name in os.listdir(self._path(PARTS)):
            stem, ext = os.path.splitext(name)
            if ext == ".parquet" and stem.isdigit():
                found.append((int(stem), self._path(PARTS, name)))
        return sorted(found)

    def _last_commit(self):
        last = _compacted_through(self._path(INDEX))
        parts = self._parts()
        return max([last] + [c for c, _ in parts])

    def table(self) -> pa.Table:
        """Every row of the folder, each image's latest commit only, sorted by image, method and rank."""
        return read_index(self.directory)

    def done(self):
        """The resolved paths of the images whose latest rows are ok and whose maps all exist
        (when maps are kept)."""
        table = self.table()
        bad = set()
        for path, status, map_file in zip(table.column("path").to_pylist(), table.column("status").to_pylist(),
                                          table.column("map").to_pylist()):
            lost = self.keep_maps and (map_file is None or not os.path.exists(self._path(map_file)))
            if status != OK or lost:
                bad.add(path)
        return set(table.column("path").to_pylist()) - bad

    # --- writing ----------------------------------------------------------------------------------

    def commit(self, results) -> int:
        """Write the maps of ``results`` (worker.ImageResult), then their rows as one part
        (module docstring); returns the rows committed."""
        commit = self._commit + 1
        rows, writes = [], []
        try:
            for result in results:
                rows += self._image_rows(result, commit, writes)
            # each map's write ends in an fsync, which waits on the disk: a batch's maps are
            # written side by side, then their folders synced, and only then the part
            list(self._pool.map(lambda write: write_bytes(*write, force=True), writes))
            list(self._pool.map(_fsync_directory, sorted({os.path.dirname(target) for target, _ in writes})))
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), buffer)
            write_bytes(self._path(PARTS, f"{commit:09d}.parquet"), buffer.getvalue(), force=True)
            _fsync_directory(self._path(PARTS))
        except OSError as e:
            raise _write_failed(self.directory, e) from None
        self._commit = commit
        return len(rows)

    def _image_rows(self, result, commit, writes):
        """The rows of one image; its maps' (file, bytes) appended to ``writes``."""
        item = result.item
        height, width = result.size if result.size is not None else (None, None)
        common = {"image": item.image, "path": item.path, "label": item.label, "seconds": result.seconds,
                  "height": height, "width": width, "commit": commit}
        if result.error is not None:
            return [{**common, "method": name, "status": result.error} for name in self.methods]
        rows = []
        for row in result.rows:
            relative = None
            if row.saliency_map is not None:
                relative = map_name(item.path, row.method, row.class_index)
                target = self._path(relative)
                folder = os.path.dirname(target)
                if folder not in self._made:
                    os.makedirs(folder, exist_ok=True)
                    self._made.add(folder)
                writes.append((target, npy_bytes(row.saliency_map)))
            rows.append({**common, "method": row.method, "rank": row.rank, "class": row.class_index,
                         "name": row.name, "score": row.score, "prob": row.prob, "map": relative,
                         "box": None if row.box is None else list(row.box), "status": OK})
        return rows

    def compact(self):
        """index.parquet ← index + parts, each image's latest commit; the parts it holds removed."""
        table = self.table()
        if not self._parts() and os.path.exists(self._path(INDEX)):
            return table
        through = self._commit
        metadata = {b"caffe_port.compacted_through": str(through).encode()}
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(metadata), buffer)
        try:
            write_bytes(self._path(INDEX), buffer.getvalue(), force=True)
            _fsync_directory(self.directory)
            for commit, part in self._parts():
                if commit <= through:
                    os.remove(part)
        except OSError as e:
            raise _write_failed(self.directory, e) from None
        return table


def _compacted_through(index_file) -> int:
    if not os.path.exists(index_file):
        return 0
    metadata = pq.read_schema(index_file).metadata or {}
    return int(metadata.get(b"caffe_port.compacted_through", b"0"))


def read_index(directory) -> pa.Table:
    """The rows of a batch folder: index.parquet and the parts it does not hold yet, each image's
    latest commit only, sorted by path, method and rank (module docstring)."""
    directory = os.fspath(directory)
    index_file = os.path.join(directory, INDEX)
    if not os.path.exists(os.path.join(directory, SETTINGS)):
        raise InputError(f"{directory}: not a caffe-port batch folder (no {SETTINGS})")
    through = _compacted_through(index_file)
    tables = [pq.read_table(index_file, schema=SCHEMA)] if os.path.exists(index_file) else []
    parts_dir = os.path.join(directory, PARTS)
    names = sorted(os.listdir(parts_dir)) if os.path.isdir(parts_dir) else []
    for name in names:
        stem, ext = os.path.splitext(name)
        if ext == ".parquet" and stem.isdigit() and int(stem) > through:
            tables.append(pq.read_table(os.path.join(parts_dir, name), schema=SCHEMA))
    if not tables:
        return SCHEMA.empty_table()
    table = pa.concat_tables(tables).replace_schema_metadata(None)
    latest = table.group_by("path").aggregate([("commit", "max")])
    # Acero joins no list columns: join the keys and a row number, then take the rows
    keys = pa.table({"path": table["path"], "commit": table["commit"],
                     "row": pa.array(np.arange(len(table), dtype=np.int64))}).join(latest, "path")
    rows = keys.filter(pc.equal(keys["commit"], keys["commit_max"]))["row"]
    return table.take(rows).sort_by([("path", "ascending"), ("method", "ascending"),
                                               ("rank", "ascending")]).cast(SCHEMA)
