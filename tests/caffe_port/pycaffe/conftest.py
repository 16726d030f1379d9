"""Caffe model files for the pycaffe tests: prototxts written here, caffemodels filled with
seeded random weights of the shapes the importer says each layer needs."""
import numpy as np
import pytest

from caffe_port.models import caffe_io
from helpers.caffe_weights import write_seeded_caffemodel

# conv1 → in-place ReLU, BatchNorm, Scale → pool → fc8 → prob: N ≠ C ≠ H ≠ W
TINY = """name: "tiny"
input: "data"
input_dim: 2
input_dim: 3
input_dim: 8
input_dim: 7
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc8" type: "InnerProduct" bottom: "pool1" top: "fc8"
  inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc8" top: "prob" }
"""


def caffenet(batch, size, *, classes=1000, fc8="fc8", softmax=True, force_backward=False):
    """CaffeNet's layer sequence (grouped convs, LRN, dropout) with few channels."""
    head = [f'name: "CaffeNet"', 'input: "data"', f"input_dim: {batch}", "input_dim: 3",
            f"input_dim: {size}", f"input_dim: {size}"]
    if force_backward:
        head.append("force_backward: true")
    body = f"""
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 8 kernel_size: 11 stride: 4 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}
layer {{ name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
  lrn_param {{ local_size: 5 alpha: 0.0001 beta: 0.75 }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
  convolution_param {{ num_output: 16 pad: 2 kernel_size: 5 group: 2 }} }}
layer {{ name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }}
layer {{ name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}
layer {{ name: "norm2" type: "LRN" bottom: "pool2" top: "norm2"
  lrn_param {{ local_size: 5 alpha: 0.0001 beta: 0.75 }} }}
layer {{ name: "conv3" type: "Convolution" bottom: "norm2" top: "conv3"
  convolution_param {{ num_output: 16 pad: 1 kernel_size: 3 }} }}
layer {{ name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }}
layer {{ name: "conv4" type: "Convolution" bottom: "conv3" top: "conv4"
  convolution_param {{ num_output: 16 pad: 1 kernel_size: 3 group: 2 }} }}
layer {{ name: "relu4" type: "ReLU" bottom: "conv4" top: "conv4" }}
layer {{ name: "conv5" type: "Convolution" bottom: "conv4" top: "conv5"
  convolution_param {{ num_output: 8 pad: 1 kernel_size: 3 group: 2 }} }}
layer {{ name: "relu5" type: "ReLU" bottom: "conv5" top: "conv5" }}
layer {{ name: "pool5" type: "Pooling" bottom: "conv5" top: "pool5"
  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}
layer {{ name: "fc6" type: "InnerProduct" bottom: "pool5" top: "fc6"
  inner_product_param {{ num_output: 32 }} }}
layer {{ name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }}
layer {{ name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6"
  dropout_param {{ dropout_ratio: 0.5 }} }}
layer {{ name: "fc7" type: "InnerProduct" bottom: "fc6" top: "fc7"
  inner_product_param {{ num_output: 32 }} }}
layer {{ name: "relu7" type: "ReLU" bottom: "fc7" top: "fc7" }}
layer {{ name: "drop7" type: "Dropout" bottom: "fc7" top: "fc7"
  dropout_param {{ dropout_ratio: 0.5 }} }}
layer {{ name: "{fc8}" type: "InnerProduct" bottom: "fc7" top: "{fc8}"
  inner_product_param {{ num_output: {classes} }} }}
"""
    if softmax:
        body += f'layer {{ name: "prob" type: "Softmax" bottom: "{fc8}" top: "prob" }}\n'
    return "\n".join(head) + body


def write_model(directory, stem, prototxt_text, seed=0):
    prototxt = directory / f"{stem}.prototxt"
    prototxt.write_text(prototxt_text)
    caffemodel = directory / f"{stem}.caffemodel"
    write_seeded_caffemodel(prototxt, caffemodel, seed)
    return str(prototxt), str(caffemodel)


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("tiny"), "tiny", TINY, seed=1)


def torch_net(prototxt, caffemodel):
    """An independent float64 oracle: the prototxt's layers (Convolution, ReLU, Pooling, LRN,
    InnerProduct, Dropout, Softmax) run by torch on the caffemodel's weights. Returns
    run(x) -> {blob: tensor} (in-place layers overwrite their blob, as in Caffe)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net = caffe_io.upgrade_net(caffe_io.read_prototxt(prototxt))
    stored = caffe_io.caffemodel_layers(caffe_io.read_caffemodel(caffemodel))
    weights = {name: [torch.from_numpy(caffe_io.blob_to_array(b).astype(np.float64)) for b in blobs]
               for name, blobs in stored.items()}

    def run(x):
        blobs = {net.layer[0].top[0]: x}
        for layer in net.layer[1:]:
            bottom = blobs[layer.bottom[0]]
            p = weights.get(layer.name)
            if layer.type == "Convolution":
                c = layer.convolution_param
                top = F.conv2d(bottom, p[0], p[1] if len(p) > 1 else None,
                               stride=c.stride[0] if len(c.stride) else 1,
                               padding=c.pad[0] if len(c.pad) else 0, groups=c.group)
            elif layer.type == "ReLU":
                top = F.relu(bottom)
            elif layer.type == "Pooling":
                c = layer.pooling_param
                if c.global_pooling:
                    top = bottom.mean(dim=(2, 3), keepdim=True)
                else:
                    top = F.max_pool2d(bottom, c.kernel_size, c.stride, ceil_mode=True)
            elif layer.type == "LRN":
                c = layer.lrn_param
                top = F.local_response_norm(bottom, c.local_size, c.alpha, c.beta, c.k)
            elif layer.type == "InnerProduct":
                top = bottom.reshape(len(bottom), -1) @ p[0].T + p[1]
            elif layer.type == "Dropout":
                top = bottom
            elif layer.type == "Softmax":
                top = torch.softmax(bottom, dim=1)
            else:
                raise AssertionError(f"oracle has no {layer.type}")
            blobs[layer.top[0]] = top
        return blobs

    return run


def torch_input_grad(run, x, blob, top_diff):
    """d Σ(top_diff · blob) / d x in float64."""
    torch = pytest.importorskip("torch")
    data = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    (run(data)[blob] * torch.from_numpy(np.asarray(top_diff, np.float64))).sum().backward()
    return data.grad.numpy()


@pytest.fixture
def helpers():
    """The builders and the torch oracle, for test modules (conftest is not importable under
    pytest's importlib mode)."""
    import types
    return types.SimpleNamespace(caffenet=caffenet, random_caffemodel=write_seeded_caffemodel,
                                 write_model=write_model, torch_net=torch_net,
                                 torch_input_grad=torch_input_grad)
