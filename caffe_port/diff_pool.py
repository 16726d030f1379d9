"""The host walk's diff memory: one buffer, laid out from the graph before the walk runs.

Why: with every diff a fresh numpy array, VGG16's backward at batch 8 peaked at 2.6–3.3× the
kept activations above the loaded net (2-core AMD EPYC, RSS high-water marks). glibc keeps freed
blocks under its mmap threshold (up to 32 MB: the diffs of a CNN's middle layers) in its heap
instead of returning them, so the resident set grew layer after layer, and every fresh block
above it is new pages that fault on first touch. Caffe gives each blob one diff buffer for the
life of the net; a walk needs far less, since a diff is dead once its last reader — the layer
that produced the blob — has run.

``plan`` replays the walk without running it (which layers run, in which order, which diffs each
writes), as caffe_port/walker.py runs it:

* a layer whose backward declares ``out`` (the kernel contract, kernels/registry.py) writes each
  bottom diff into a *slot*: a stretch of the buffer of that diff's size and dtype;
* a layer that does not may hand back views of its top diffs (Dropout and Flatten pass them on;
  a ReLU the walk lets run in place writes over them), so its bottom diffs are taken to live in
  its top diffs' slots;
* a slot lives from the layer that writes it to the last layer that reads a diff living in it:
  the producer of each such blob, or the walk's end for a blob whose producer does not run;
* a second diff arriving at a blob (two readers, Caffe's split) gets a slot for its layer only:
  the walk adds it into the first one there;
* nothing that leaves the walk is in the buffer: the diffs it returns (``keep``) and the slots
  they would live in get fresh arrays; the caller's own diffs are the caller's memory;
* a layer whose kernel declares ``out_overlaps_top`` (the convolution input diff, which writes its
  images in order, each after reading its top diff) and whose bottom diff is as large as its one
  private top diff gets its slot laid over that top diff's, one image before it: VGG16's conv1_2
  then needs its top diff and one image more, not twice it (at batch 8, 115 MB instead of 205).

Slots are placed largest first, each at the lowest offset free for its whole lifetime (the greedy
interval colouring of inference engines' tensor planners), so a chain of layers needs about its
largest pair of adjacent diffs, not their sum (slots laid over each other are placed as one). The buffer is the walk's (``memory``): made when
it starts, gone when it ends, so that the forward that follows has the memory back (a buffer kept
from one walk to the next, as Caffe keeps its diffs, saved its first-touch page faults but stood
beside the next forward's transient tensors: VGG16's second pass peaked 400 MB higher).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import helper

from caffe_port.memory import return_freed_heap

ALIGN = 64          # bytes: each slot starts on a cache line
TRIM_BYTES = 64 << 20   # a buffer this large is mapped fresh: the heap's free pages go back first


@dataclass(eq=False)          # identity: two slots of one shape are still two slots
class Slot:
    shape: tuple
    dtype: np.dtype
    start: int                      # the walk step (layer run) that writes it
    end: int                        # the last step that reads a diff living in it
    offset: int = 0
    region: "Slot" = None           # the first slot of its chain of slots laid over each other
    rel: int = 0                    # its start in bytes from the region's first slot's

    def __post_init__(self):
        self.region = self.region or self

    @property
    def nbytes(self) -> int:
        return _aligned(int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize)


def _aligned(n):
    return -(-n // ALIGN) * ALIGN


@dataclass
class _Diff:
    """What the plan knows of a live diff: the slots its memory may be in, and whether it may be
    the caller's memory."""
    slots: set = field(default_factory=set)
    caller: bool = False


@dataclass
class Plan:
    layers: dict                    # node name -> [Slot or None per input]
    size: int                       # bytes of buffer the slots need

    def out(self, node):
        return self.layers.get(node.name)


NO_PLAN = Plan({}, 0)


def plan(graph, nodes, injected, shapes, keep, controls_of, in_place) -> Plan:
    """Lay out the diffs of a walk over ``nodes`` (the walker's arguments; ``controls_of(op_type)``
    the controls the kernel the backend runs for that op declares)."""
    written = {i for node in nodes for i in node.inputs if i}
    live = {name: _Diff(caller=True) for name in injected if name not in written}
    k = next((int(np.shape(d)[0]) for d in injected.values()), 1)
    layers, slots, step = {}, [], 0
    for node in reversed(nodes):
        tops = [live[o] for o in node.outputs if o in live]
        if not tops or not graph.needs_backward(node):
            continue
        if not graph.has_kernel(node):       # the walker stops here with the op refused
            return NO_PLAN
        declared = controls_of(node.op_type)
        private = all(not d.caller for d in tops) and not any(o in keep for o in node.outputs if o in live)
        # the walker lets a kernel run in place over tops that are the walk's alone
        runs_in_place = in_place and "in_place" in declared and private
        writes_out = "out" in declared and not runs_in_place
        over = _under_top(node, live, tops, shapes) if private and "out_overlaps_top" in declared else None
        given = [None] * len(node.inputs)
        for i, name in enumerate(node.inputs):
            if not name or name in graph.constants or not graph.propagate_down[node.name][i]:
                continue
            slot = _slot(graph, name, shapes, k, step) if writes_out and name not in keep else None
            if slot is not None and i == 0 and over is not None and name not in live:
                _lay_over(slot, over)
            if name in live:                 # a second reader's diff: added into the first at once
                given[i] = slot
            elif slot is not None:
                given[i] = slot
                live[name] = _Diff({slot})
            elif writes_out:                 # a fresh array
                live[name] = _Diff()
            else:                            # may be a view of the top diffs
                live[name] = _Diff(set().union(*(d.slots for d in tops)), any(d.caller for d in tops))
        slots.extend(s for s in given if s is not None)
        if any(s is not None for s in given):
            layers[node.name] = given
        for o in node.outputs:               # each top's diff has now been read by its only writer
            if o in live and o not in keep:
                for s in live.pop(o).slots:
                    s.end = max(s.end, step)
        step += 1
    returned = set()                         # slots a returned diff may live in: fresh arrays instead
    for name, d in live.items():
        for s in d.slots:
            s.end = step
            if name in keep:
                returned.add(id(s))
    layers = {n: [None if s is None or id(s) in returned else s for s in given] for n, given in layers.items()}
    return Plan(layers, _place([s for s in slots if id(s) not in returned]))


class Plans:
    """The plans of the last few walks, by everything ``plan`` reads that can differ between two
    walks of one net: the layers walked, the injected diffs' names and shapes, the shapes, the
    diffs kept and in-place. A walk of the same shapes reuses its layout (planning GoogLeNet's
    walk in Python took 4 ms of its 90 ms backward at batch 1); the graph's structure, the
    kernels and their controls are fixed for the backend holding this."""

    def __init__(self, size=8):
        self.size = size
        self._plans = {}             # key -> Plan, oldest first

    def __len__(self):
        return len(self._plans)

    def get(self, graph, nodes, injected, shapes, keep, controls_of, in_place) -> Plan:
        key = (tuple(id(n) for n in nodes[:1] + nodes[-1:]), len(nodes),
               tuple(sorted((name, np.shape(d)) for name, d in injected.items())),
               frozenset(keep), bool(in_place), frozenset(shapes.items()))
        layout = self._plans.pop(key, None)
        if layout is None:
            layout = plan(graph, nodes, injected, shapes, keep, controls_of, in_place)
            while len(self._plans) >= self.size:
                self._plans.pop(next(iter(self._plans)))
        self._plans[key] = layout            # the newest last
        return layout


def _under_top(node, live, tops, shapes):
    """The slot of a layer's one top diff, when the layer may write its first bottom diff laid
    over it (``out_overlaps_top``): that slot holds nothing else alive, and the bottom diff is as
    large as the top diff (a 3×3 convolution keeping its channels: VGG16's conv1_2). A smaller
    one could be laid over too, but a chain of slots moves as one, and one that outlives the
    large diff it lies on holds the bytes beside it: VGG16's conv2 chain under pool1 took 34 MB
    more at batch 8 than the conv2_1 diff on its own."""
    if len(tops) != 1 or len(tops[0].slots) != 1 or not node.inputs:
        return None
    (top,) = tops[0].slots
    name = next(o for o in node.outputs if o in live)
    if any(top in d.slots for other, d in live.items() if other != name):
        return None
    bottom, top_shape = shapes.get(node.inputs[0]), shapes.get(name)
    if bottom is None or top_shape is None or int(np.prod(bottom[1:])) != int(np.prod(top_shape[1:])):
        return None
    return top


def _lay_over(slot, top):
    """Place ``slot`` over ``top``, one image's diff (rounded up to a cache line) before it."""
    lead = _aligned(int(np.prod(slot.shape[2:], dtype=np.int64)) * slot.dtype.itemsize)
    slot.region, slot.rel = top.region, top.rel - lead


def _slot(graph, name, shapes, k, step):
    shape = shapes.get(name)
    if shape is None or any(not isinstance(d, (int, np.integer)) for d in shape):
        return None
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(graph.elem_types.get(name, 1)))
    if dtype not in (np.float32, np.float64):
        return None
    return Slot((k,) + tuple(int(d) for d in shape), dtype, step, step)


@dataclass(eq=False)
class _Region:
    """Slots laid over each other, placed as one: their bytes and their lifetimes' union."""
    members: list
    first: int = 0
    nbytes: int = 0
    start: int = 0
    end: int = 0
    offset: int = 0

    def __post_init__(self):
        self.first = min(s.rel for s in self.members)
        self.nbytes = max(s.rel + s.nbytes for s in self.members) - self.first
        self.start = min(s.start for s in self.members)
        self.end = max(s.end for s in self.members)


def _place(slots) -> int:
    """Offsets, largest region first, each at the lowest offset where no region already placed
    whose lifetime overlaps its own is in the way. Returns the bytes needed."""
    chains = {}
    for s in slots:
        chains.setdefault(id(s.region), []).append(s)
    placed, size = [], 0
    for r in sorted((_Region(m) for m in chains.values()), key=lambda r: (-r.nbytes, r.start)):
        offset = 0
        for other in sorted((p for p in placed if p.start <= r.end and r.start <= p.end), key=lambda p: p.offset):
            if offset + r.nbytes <= other.offset:
                break
            offset = max(offset, other.offset + other.nbytes)
        r.offset = offset
        for s in r.members:
            s.offset = offset + s.rel - r.first
        placed.append(r)
        size = max(size, offset + r.nbytes)
    return size


def memory(layout: Plan) -> dict:
    """node name -> [array or None per input]: each slot as an array of its shape and dtype, all
    views of one new buffer, which goes when the walk lets go of its diffs."""
    if not layout.size:
        return {}
    if layout.size >= TRIM_BYTES:
        return_freed_heap()
    buffer = np.empty(layout.size + ALIGN, np.uint8)
    base = -buffer.ctypes.data % ALIGN

    def view(slot):
        count = int(np.prod(slot.shape, dtype=np.int64))
        start = base + slot.offset
        return buffer[start:start + count * slot.dtype.itemsize].view(slot.dtype).reshape(slot.shape)

    return {name: [None if s is None else view(s) for s in given] for name, given in layout.layers.items()}
