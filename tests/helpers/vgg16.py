"""VGG16's deploy net (Simonyan & Zisserman, configuration D) in Caffe's names — conv1_1 …
conv5_3, pool1 … pool5, fc6, fc7, fc8, prob, in-place ReLUs and Dropouts — written with
caffe_port's own NetSpec (the public VGG_ILSVRC_16_layers_deploy.prototxt has the same layers)."""
from caffe_port.pycaffe import NetSpec, layers as L, params as P

BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]   # (channels, convolutions) per block


def vgg16_prototxt(batch=1, size=224, fillers=False):
    """The deploy prototxt text, with an Input of (batch, 3, size, size); ``fillers`` gives each
    layer He's (msra) weight filler, so a net made without a caffemodel has working weights."""
    start = dict(weight_filler=dict(type="msra")) if fillers else {}
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, size, size]))
    x = n.data
    for block, (channels, convolutions) in enumerate(BLOCKS, start=1):
        for k in range(1, convolutions + 1):
            n[f"conv{block}_{k}"] = x = L.Convolution(x, num_output=channels, kernel_size=3, pad=1,
                                                               **start)
            n[f"relu{block}_{k}"] = x = L.ReLU(x, in_place=True)
        n[f"pool{block}"] = x = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    for name in ("fc6", "fc7"):
        n[name] = x = L.InnerProduct(x, num_output=4096, **start)
        n[f"relu{name[2:]}"] = x = L.ReLU(x, in_place=True)
        n[f"drop{name[2:]}"] = x = L.Dropout(x, in_place=True, dropout_ratio=0.5)
    n.fc8 = x = L.InnerProduct(x, num_output=1000, **start)
    n.prob = L.Softmax(x)
    return 'name: "VGG_ILSVRC_16_layers"\n' + str(n.to_proto())
