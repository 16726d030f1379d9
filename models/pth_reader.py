"""Read PyTorch ``.pth`` state dicts into numpy arrays without importing torch or running code.

A torch file is a pickle, and a pickle can name any global and call it (``os.system`` included).
This reader unpickles through a ``find_class`` that admits only the globals a state dict needs,
each mapped to a harmless local stand-in; any other global is refused with a ``ModelError``
before it is looked up, so a model file never runs code.

Two layouts are read:

* legacy (torch < 1.6, and ``_use_new_zipfile_serialization=False``): one stream of
  magic-number pickle, protocol-version pickle, sys-info pickle, the object pickle (tensors
  point at storages by persistent id), a pickle of the storage keys, then per key, in that
  order, an int64 element count followed by the storage's raw bytes;
* zip (torch >= 1.6): ``<archive>/data.pkl`` plus one raw file ``<archive>/data/<key>`` per
  storage, and ``<archive>/byteorder`` in newer files. Members are read, never extracted; still,
  an archive naming one outside itself (absolute, a drive, a ``..``) is refused: torch writes
  none, so such a file was made to mislead some other tool.

A tensor is rebuilt from its storage as Caffe-free strided indexing:
``tensor[i_0, …, i_{d-1}] = storage[offset + Σ_k i_k · stride_k]`` (offset and strides in
elements), copied into a C-contiguous array.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from caffe_port.errors import ModelError
from caffe_port.memory import check_fits

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage type → numpy dtype. bfloat16 has no numpy dtype: it is widened to float32
# (its 16 bits are the high half of a float32).
STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and kin: only its name and dtype matter."""
    name: str

    @property
    def dtype(self):
        return STORAGE_DTYPES[self.name]


@dataclass(frozen=True)
class _StorageRef:
    """A storage named by a persistent id; its bytes are read after the pickle (legacy) or
    from the archive (zip). ``view_offset``/``view_size`` describe legacy storage views."""
    key: str
    storage_type: _StorageType
    numel: int
    root_key: str
    view_offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    """What ``_rebuild_tensor_v2`` returns here: where the tensor's elements live."""
    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    # an nn.Parameter is its data here
    return data


def _allowed_global(module: str, name: str):
    """The local stand-in for an admitted global, or None."""
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "torch._utils":
        return {"_rebuild_tensor_v2": _rebuild_tensor_v2, "_rebuild_tensor": _rebuild_tensor,
                "_rebuild_parameter": _rebuild_parameter}.get(name)
    if module == "torch" and name in STORAGE_DTYPES:
        return _StorageType(name)
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the admitted globals and the ``'storage'`` persistent ids."""

    def __init__(self, file, path: str, legacy: bool):
        super().__init__(file)
        self.path = path
        self.legacy = legacy
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module, name):
        found = _allowed_global(module, name)
        if found is None:
            raise ModelError(f"{self.path}: torch file refuses global {module}.{name} "
                             f"(a model file may only hold tensors)")
        return found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise ModelError(f"{self.path}: unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), pid[4]
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, storage_type, int(numel), key)
        root = self.storages[key]
        view = pid[5] if self.legacy and len(pid) > 5 else None
        if view is None:
            return root
        # legacy storage view: (view_key, offset, size) in elements of the root storage
        view_key, view_offset, view_size = view
        return _StorageRef(str(view_key), storage_type, int(view_size), key, int(view_offset))


def _load_pickle(file, path, legacy):
    unpickler = _RestrictedUnpickler(file, path, legacy)
    return unpickler.load(), unpickler.storages


def _strided_copy(flat: np.ndarray, tensor: _TensorRef, path: str, name: str) -> np.ndarray:
    """tensor[i] = flat[offset + Σ i_k stride_k], as a new C-contiguous array."""
    size, stride = tensor.size, tensor.stride
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ModelError(f"{path}: tensor {name!r} has an invalid size {size} / stride {stride}")
    offset = tensor.offset + tensor.storage.view_offset
    if 0 in size:
        return np.empty(size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= flat.size:
        raise ModelError(f"{path}: tensor {name!r} reaches element {last} of a storage of "
                         f"{flat.size} elements (corrupt file)")
    itemsize = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=[s * itemsize for s in stride], writeable=False)
    out = np.array(view, order="C")
    if tensor.storage.storage_type.name == "BFloat16Storage":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _materialise(obj, arrays_by_root, path, name=""):
    """Replace every _TensorRef in the unpickled object by its numpy array."""
    if isinstance(obj, _TensorRef):
        return _strided_copy(arrays_by_root[obj.storage.root_key], obj, path, name)
    if isinstance(obj, dict):
        out = collections.OrderedDict() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _materialise(value, arrays_by_root, path, f"{name}.{key}" if name else str(key))
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, arrays_by_root, path, f"{name}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (_StorageRef, _StorageType)):
        raise ModelError(f"{path}: {name or 'the file'} holds a bare storage, not a tensor")
    return obj


def _read_legacy(stream, path):
    magic, _ = _load_pickle(stream, path, True)
    if magic != LEGACY_MAGIC_NUMBER:
        raise ModelError(f"{path}: not a torch file (bad magic number)")
    protocol, _ = _load_pickle(stream, path, True)
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise ModelError(f"{path}: unsupported torch legacy protocol version {protocol!r}")
    sys_info, _ = _load_pickle(stream, path, True)
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
        raise ModelError(f"{path}: only little-endian torch files are supported")
    obj, storages = _load_pickle(stream, path, True)
    keys, _ = _load_pickle(stream, path, True)
    remaining = os.fstat(stream.fileno()).st_size - stream.tell()
    if not isinstance(keys, list):
        raise ModelError(f"{path}: corrupt torch file (storage key list is a {type(keys).__name__})")
    arrays_by_root = {}
    for key in keys:
        key = str(key)
        if key not in storages:
            raise ModelError(f"{path}: storage {key!r} is listed but no tensor uses it")
        ref = storages[key]
        header = stream.read(8)
        if len(header) < 8:
            raise ModelError(f"{path}: truncated: storage {key!r} is missing")
        (numel,) = struct.unpack("<q", header)
        if numel != ref.numel:
            raise ModelError(f"{path}: corrupt: storage {key!r} has {numel} elements, "
                             f"the pickle says {ref.numel}")
        nbytes = numel * ref.storage_type.dtype.itemsize
        remaining -= 8
        if nbytes > remaining:  # checked before reading, so a forged count cannot allocate
            raise ModelError(f"{path}: truncated: storage {key!r} needs {nbytes} bytes, "
                             f"{max(remaining, 0)} left")
        raw = stream.read(nbytes)
        remaining -= nbytes
        arrays_by_root[key] = np.frombuffer(raw, ref.storage_type.dtype)
    missing = sorted(set(storages) - set(arrays_by_root))
    if missing:
        raise ModelError(f"{path}: corrupt: storages {missing[:3]} are used but not stored")
    return _materialise(obj, arrays_by_root, path)


def _outside_archive(name: str) -> bool:
    """A member name that, extracted, would land outside the archive's folder: absolute, with a
    drive, or with a '..' component (either slash). torch never writes one."""
    parts = re.split(r"[/\\]", name)
    return name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]


def _read_zip(archive: zipfile.ZipFile, path):
    names = archive.namelist()
    escaping = [n for n in names if _outside_archive(n)]
    if escaping:
        raise ModelError(f"{path}: zip member {escaping[0]!r} names a path outside the archive "
                         "(path traversal); refused")
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ModelError(f"{path}: zip file is not a torch archive (no <archive>/data.pkl)")
    prefix = pickles[0][: -len("data.pkl")]
    if prefix + "byteorder" in names and archive.read(prefix + "byteorder").strip() != b"little":
        raise ModelError(f"{path}: only little-endian torch files are supported")
    # a member's declared size bounds what is read: a compressed member (torch stores its
    # members uncompressed) could otherwise inflate a small file into gigabytes
    pickled = archive.getinfo(pickles[0])
    check_fits(pickled.file_size, f"{path}: unpacking its {pickled.filename!r}")
    obj, storages = _load_pickle(io.BytesIO(archive.read(pickled)), path, False)
    arrays_by_root = {}
    for key, ref in storages.items():
        member = f"{prefix}data/{key}"
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise ModelError(f"{path}: corrupt: storage file {member!r} is missing") from None
        nbytes = ref.numel * ref.storage_type.dtype.itemsize
        if info.file_size < nbytes:
            raise ModelError(f"{path}: truncated: storage {member!r} has {info.file_size} of "
                             f"{nbytes} bytes")
        with archive.open(info) as stored:
            raw = stored.read(nbytes)           # what the tensors use, however large the member
        if len(raw) < nbytes:
            raise ModelError(f"{path}: truncated: storage {member!r} has {len(raw)} of {nbytes} bytes")
        arrays_by_root[key] = np.frombuffer(raw, ref.storage_type.dtype, count=ref.numel)
    return _materialise(obj, arrays_by_root, path)


def load(path) -> object:
    """Unpickle a torch file with every tensor replaced by a numpy array.

    Raises ModelError for a missing, truncated or corrupt file and for any pickled global other
    than OrderedDict, the tensor rebuild functions and the storage types."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            if zipfile.is_zipfile(stream):
                stream.seek(0)
                with zipfile.ZipFile(stream) as archive:
                    return _read_zip(archive, path)
            stream.seek(0)
            return _read_legacy(stream, path)
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise ModelError(f"{path}: cannot read the torch file ({exc.strerror})") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, zipfile.BadZipFile, UnicodeDecodeError,
            OverflowError, MemoryError, RecursionError,
            NotImplementedError) as exc:   # zipfile: "zip file version 25.4", an unknown method
        # the pickle machine's own complaints about a damaged stream
        raise ModelError(f"{path}: truncated or corrupt torch file ({type(exc).__name__}: "
                         f"{str(exc)[:80]})") from None


def load_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """A torch state dict as an ordered dict: parameter name → numpy array (C-contiguous).

    Dtypes: float32, float64, float16 and the integer/bool types keep their numpy equivalents;
    bfloat16 becomes float32. Raises ModelError if the file holds something else than a flat
    mapping of names to tensors."""
    obj = load(path)
    if not isinstance(obj, dict):
        raise ModelError(f"{os.fspath(path)}: holds a {type(obj).__name__}, not a state dict")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if not_tensors:
        raise ModelError(f"{os.fspath(path)}: not a flat state dict (entries "
                         f"{not_tensors[:3]} are not tensors)")
    return collections.OrderedDict((str(k), v) for k, v in obj.items())
