"""The seeds' pycaffe programs, run as written with only the import changed.

Model files are small stand-ins written here (the same layer sequences and names, few channels,
seeded random weights); the mean .npy and the images are made here too. A float64 torch run of
the same prototxt and weights (conftest.torch_net) is the oracle for outputs and gradients.
"""
import os
import sys
import warnings

import cv2
import numpy as np
import pytest

import caffe_port.pycaffe as caffe
from caffe_port.pycaffe import mode

# float32 engine against a float64 oracle, through ~10 layers
GRAD_RTOL = 1e-3
# first-layer weights scaled so that [0, 255]-range images give class scores of a few units
FIRST_GAIN = 1 / 500


def assert_grad_close(actual, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=GRAD_RTOL, atol=GRAD_RTOL * scale)


def photo(height, width, seed):
    """A smooth RGB test picture (uint8, OpenCV's BGR order): ramps, a disc and a bar."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([120 + 100 * xx, 60 + 150 * yy, 200 - 120 * xx * yy], axis=-1)
    cv2.circle(image, (width // 3, height // 2), height // 5, (30, 200, 90), -1)
    cv2.rectangle(image, (width // 2, height // 5), (width // 2 + width // 8, height - 10),
                  (220, 40, 40), -1)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def mean_npy(path, seed=0):
    """An ilsvrc_2012_mean.npy stand-in: (3, 256, 256) float64 BGR means around 104/117/123."""
    rng = np.random.default_rng(seed)
    mean = np.array([104.0, 117.0, 123.0])[:, None, None] + rng.normal(0, 5, (3, 256, 256))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, mean)
    return mean


# --- seed 000: saliency for class 281 via a label at the Softmax output -------------------------

def test_seed_000_backward_with_a_label(tmp_path, monkeypatch, helpers):
    caffenet, random_caffemodel = helpers.caffenet, helpers.random_caffemodel
    torch_net, torch_input_grad = helpers.torch_net, helpers.torch_input_grad
    root = tmp_path / "caffe"
    model_dir = root / "models" / "bvlc_reference_caffenet"
    prototxt = write(model_dir / "deploy.prototxt", caffenet(1, 227, force_backward=True))
    random_caffemodel(prototxt, model_dir / "bvlc_reference_caffenet.caffemodel", seed=0,
                      first_gain=FIRST_GAIN)
    mean_npy(root / "python" / "caffe" / "imagenet" / "ilsvrc_2012_mean.npy")
    caffe_root = str(root) + "/"
    monkeypatch.setattr(mode, "_warned_once", set())

    with pytest.warns(UserWarning, match="caffe.TRAIN"):
        # ---- seed 000 as written ----
        imagenetMeanFile = caffe_root  +'python/caffe/imagenet/ilsvrc_2012_mean.npy'
        caffe.set_mode_cpu()
        net = caffe.Net(caffe_root +   'models/bvlc_reference_caffenet/deploy.prototxt',
                    caffe_root + 'models/bvlc_reference_caffenet/bvlc_reference_caffenet.caffemodel',
                    caffe.TRAIN)
    transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
    transformer.set_transpose('data', (2,0,1))
    transformer.set_mean('data', np.load(caffe_root + 'python/caffe/imagenet/ilsvrc_2012_mean.npy').mean(1).mean(1)) # mean pixel 
    transformer.set_raw_scale('data', 255)  # the reference model operates on images in [0,255] range instead of [0,1]
    transformer.set_channel_swap('data', (2,1,0))  # the reference model has channels in BGR order instead of RGB

    out = net.forward()

    backout = net.backward()

    label_index = 281  # Index for cat class
    caffe_data = np.random.random((1,3,227,227))
    caffeLabel = np.zeros((1,1000,1,1))
    caffeLabel[0,label_index,0,0] = 1;

    bw = net.backward(**{net.outputs[0]: caffeLabel})
    # ---- end of seed 000 ----

    assert net.outputs == ["prob"] and out["prob"].shape == (1, 1000)
    # as in pycaffe, the returned arrays are the blobs' diffs: backout (zeros then: prob had no
    # diff yet) now shows the second backward's result
    assert backout["data"] is bw["data"] is net.blobs["data"].diff
    # the label at prob is the softmax Jacobian's row sum at fc8. The data blob still holds
    # Caffe's zeros here (the post never fills it): every pooling window ties, so the check is
    # against caffe_port's own fc8 backward (Caffe's first-max switches), not torch
    saliency = bw["data"].copy()
    label = caffeLabel.reshape(1, 1000)
    prob = out["prob"].astype(np.float64)
    fc8_diff = prob * (label - np.sum(label * prob, axis=1, keepdims=True))
    np.testing.assert_allclose(saliency, net.backward(fc8=fc8_diff)["data"], rtol=1e-4,
                               atol=1e-4 * np.abs(saliency).max())
    run = torch_net(model_dir / "deploy.prototxt", model_dir / "bvlc_reference_caffenet.caffemodel")

    # the notebook step the post builds on: an image through the transformer
    image_path = tmp_path / "cat.png"
    cv2.imwrite(str(image_path), photo(260, 300, seed=1))
    image = caffe.io.load_image(str(image_path))
    net.blobs['data'].data[...] = transformer.preprocess('data', image)
    out = net.forward()
    bw = net.backward(**{net.outputs[0]: caffeLabel})
    x = net.blobs["data"].data
    expected_prob = run(__import__("torch").from_numpy(x.astype(np.float64)))["prob"].numpy()
    np.testing.assert_allclose(out["prob"], expected_prob, rtol=1e-4, atol=1e-8)
    assert_grad_close(bw["data"], torch_input_grad(run, x, "prob", label))


def test_seed_000_softmax_with_loss_recipe(tmp_path, monkeypatch, helpers):
    """The post's own recipe: SoftmaxWithLoss(fc8, label) in place of the Softmax (its top still
    "prob"), force_backward, net.forward() then net.backward(): the data diff is the gradient of
    −log p_label. Caffe needs the label blob declared (an undeclared "label" is Caffe's unknown
    bottom error), so the prototxt adds it as an input."""
    caffenet, random_caffemodel = helpers.caffenet, helpers.random_caffemodel
    torch_net, torch_input_grad = helpers.torch_net, helpers.torch_input_grad
    model_dir = tmp_path / "models" / "bvlc_reference_caffenet"
    model_dir.mkdir(parents=True)
    deploy = caffenet(1, 227, softmax=False, force_backward=True)
    prototxt = deploy.replace('input_dim: 227\ninput_dim: 227', 'input_dim: 227\ninput_dim: 227\n'
                              'input: "label"\ninput_dim: 1\ninput_dim: 1\ninput_dim: 1\n'
                              'input_dim: 1', 1)
    prototxt += ('layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" '
                 'top: "prob" }\n')
    (model_dir / "deploy.prototxt").write_text(prototxt)
    (model_dir / "plain.prototxt").write_text(deploy)
    caffemodel = model_dir / "bvlc_reference_caffenet.caffemodel"
    random_caffemodel(model_dir / "plain.prototxt", caffemodel, seed=0, first_gain=FIRST_GAIN)
    monkeypatch.setattr(mode, "_warned_once", set())
    with pytest.warns(UserWarning, match="caffe.TRAIN"):
        net = caffe.Net(str(model_dir / "deploy.prototxt"), str(caffemodel), caffe.TRAIN)
    image_path = tmp_path / "cat.png"
    cv2.imwrite(str(image_path), photo(260, 300, seed=4))
    transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
    transformer.set_transpose('data', (2, 0, 1))
    transformer.set_raw_scale('data', 255)
    transformer.set_channel_swap('data', (2, 1, 0))
    image = caffe.io.resize_image(caffe.io.load_image(str(image_path)), (227, 227))
    net.blobs['data'].data[...] = transformer.preprocess('data', image)
    net.blobs['label'].data[...] = 281
    # ---- the recipe ----
    out = net.forward()
    backout = net.backward()
    # ----
    assert net.outputs == ["prob"] and out["prob"].shape == ()     # the loss, named "prob"
    fc8 = net.blobs["fc8"].data.astype(np.float64)
    p = np.exp(fc8 - fc8.max())
    p /= p.sum()
    assert float(out["prob"]) == pytest.approx(-np.log(p[0, 281]), rel=1e-5)
    onehot = np.zeros_like(p)
    onehot[0, 281] = 1
    np.testing.assert_allclose(net.blobs["fc8"].diff, p - onehot, rtol=0, atol=1e-6)
    run = torch_net(model_dir / "plain.prototxt", caffemodel)
    assert_grad_close(backout["data"], torch_input_grad(run, net.blobs["data"].data, "fc8",
                                                        p - onehot))


# --- seed 003: class activation maps on a GAP + fc net --------------------------------------------

CAM_NET = """name: "GoogleNetCAM"
input: "data"
input_dim: 10
input_dim: 3
input_dim: 224
input_dim: 224
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 7 stride: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "CAM_conv" type: "Convolution" bottom: "pool1" top: "CAM_conv"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 } }
layer { name: "CAM_relu" type: "ReLU" bottom: "CAM_conv" top: "CAM_conv" }
layer { name: "CAM_pool" type: "Pooling" bottom: "CAM_conv" top: "CAM_pool"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "CAM_fc" type: "InnerProduct" bottom: "CAM_pool" top: "CAM_fc"
  inner_product_param { num_output: 1000 } }
layer { name: "prob" type: "Softmax" bottom: "CAM_fc" top: "prob" }
"""


def test_seed_003_class_activation_maps(tmp_path, monkeypatch, helpers):
    random_caffemodel, torch_net = helpers.random_caffemodel, helpers.torch_net
    scipy_io = pytest.importorskip("scipy.io")
    models = tmp_path / "models"
    prototxt = write(models / "deploy_googlenetCAM.prototxt", CAM_NET)
    random_caffemodel(prototxt, models / "imagenet_googlenetCAM_train_iter_120000.caffemodel", 3)
    mean_npy(tmp_path / "caffe" / "python" / "caffe" / "imagenet" / "ilsvrc_2012_mean.npy")
    cells = np.empty((1000, 1), dtype=object)
    for i in range(1000):
        cells[i, 0] = f"n{i:08d} class {i}"
    scipy_io.savemat(str(tmp_path / "categories1000.mat"), {"categories": cells})
    cv2.imwrite(str(tmp_path / "22.jpg"), photo(240, 320, seed=2))
    monkeypatch.setenv("CAFFE_ROOT", str(tmp_path / "caffe"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    shown = []

    # ---- seed 003 as written (import changed; the two helper files defined in place; the
    # ---- windows it opens collected instead); a function of its own for its imports ----
    def program():
        import numpy as np
        import sys
        import os
        try:
            caffe_root = os.environ['CAFFE_ROOT'] + '/'
        except KeyError:
            raise KeyError("Define CAFFE_ROOT in ~/.bashrc")
        sys.path.insert(1, caffe_root+'python/')
        import caffe_port.pycaffe as caffe
        import cv2
        import scipy.io

        def py_returnCAMmap(activation, weights_LR):
            print(activation.shape)
            if activation.shape[0] == 1: # only one image
                n_feat, w, h = activation[0].shape
                act_vec = np.reshape(activation[0], [n_feat, w*h])
                n_top = weights_LR.shape[0]
                out = np.zeros([w, h, n_top])
                for t in range(n_top):
                    weights_vec = np.reshape(weights_LR[t], [1, weights_LR[t].shape[0]])
                    heatmap_vec = np.dot(weights_vec,act_vec)
                    heatmap = np.reshape( np.squeeze(heatmap_vec) , [w, h])
                    out[:,:,t] = heatmap
            else: # 10 images (over-sampling)
                raise Exception('Not implemented')
            return out

        def py_map2jpg(imgmap, rang, colorMap):
            if rang is None:
                rang = [np.min(imgmap), np.max(imgmap)]
            heatmap_x = np.round(imgmap*255).astype(np.uint8)

            return cv2.applyColorMap(heatmap_x, cv2.COLORMAP_JET)

        model = 'googlenet'
        if model == 'alexnet':
            net_weights = 'models/alexnetplusCAM_imagenet.caffemodel'
            net_model = 'models/deploy_alexnetplusCAM_imagenet.prototxt'
            out_layer = 'fc9'
            last_conv = 'conv7'
            crop_size = 227
        elif model == 'googlenet':
            net_weights = 'models/imagenet_googlenetCAM_train_iter_120000.caffemodel'
            net_model = 'models/deploy_googlenetCAM.prototxt'
            out_layer = 'CAM_fc'
            crop_size = 224
            last_conv = 'CAM_conv'
        else:
            raise Exception('This model is not defined')

        categories = scipy.io.loadmat('categories1000.mat')

        def im2double(im):
            return cv2.normalize(im.astype('float'), None, 0.0, 1.0, cv2.NORM_MINMAX)

        net = caffe.Net(net_model, net_weights, caffe.TEST)
        transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
        transformer.set_transpose('data', (2,0,1))
        transformer.set_mean('data', np.load(caffe_root + 'python/caffe/imagenet/ilsvrc_2012_mean.npy').mean(1).mean(1))

        weights_LR = net.params[out_layer][0].data 

        image = cv2.imread('22.jpg')
        image = cv2.resize(image, (256, 256))
        # Take center crop.
        center = np.array(image.shape[:2]) / 2.0
        crop = np.tile(center, (1, 2))[0] + np.concatenate([
            -np.array([crop_size, crop_size]) / 2.0,
            np.array([crop_size, crop_size]) / 2.0
        ])
        crop = crop.astype(int)
        input_ = image[crop[0]:crop[2], crop[1]:crop[3], :]

        # extract conv features
        net.blobs['data'].reshape(*np.asarray([1,3,crop_size,crop_size])) # run only one image
        net.blobs['data'].data[...][0,:,:,:] = transformer.preprocess('data', input_)
        out = net.forward()
        scores = out['prob']
        activation_lastconv = net.blobs[last_conv].data

        ## Class Activation Mapping
        topNum = 5 # generate heatmap for top X prediction results
        scoresMean = np.mean(scores, axis=0)
        ascending_order = np.argsort(scoresMean)
        IDX_category = ascending_order[::-1] # [::-1] to sort in descending order
        curCAMmapAll = py_returnCAMmap(activation_lastconv, weights_LR[IDX_category[:topNum],:])
        curResult = im2double(image)

        for j in range(topNum):
            # for one image
            curCAMmap_crops = curCAMmapAll[:,:,j]
            curCAMmapLarge_crops = cv2.resize(curCAMmap_crops, (256,256))
            curHeatMap = cv2.resize(im2double(curCAMmapLarge_crops),(256,256)) # this line is not doing much
            curHeatMap = im2double(curHeatMap)
            curHeatMap = py_map2jpg(curHeatMap, None, 'jet')
            curHeatMap = im2double(image)*0.2+im2double(curHeatMap)*0.7
            shown.append((categories['categories'][IDX_category[j]][0][0], curHeatMap))
        return locals()
    # ---- end of seed 003 ----
    seed = program()
    scores, IDX_category, curCAMmapAll = seed["scores"], seed["IDX_category"], seed["curCAMmapAll"]
    activation_lastconv, net, topNum = seed["activation_lastconv"], seed["net"], seed["topNum"]
    out_layer, last_conv = seed["out_layer"], seed["last_conv"]

    assert scores.shape == (1, 1000) and activation_lastconv.shape == (1, 16, 27, 27)
    assert IDX_category[0] == np.argmax(scores[0])
    assert [title for title, _ in shown][0] == f"n{IDX_category[0]:08d} class {IDX_category[0]}"
    assert all(heat.shape == (256, 256, 3) for _, heat in shown)
    # CAM's identity: the spatial mean of class k's map plus its bias is class k's score, which
    # holds only if the CAM_conv blob holds the in-place ReLU's output (pre-ReLU has negatives)
    bias = net.params[out_layer][1].data
    for j in range(topNum):
        k = IDX_category[j]
        np.testing.assert_allclose(curCAMmapAll[:, :, j].mean() + bias[k],
                                   net.blobs[out_layer].data[0, k], rtol=1e-4, atol=1e-5)
    run = torch_net(models / "deploy_googlenetCAM.prototxt",
                    models / "imagenet_googlenetCAM_train_iter_120000.caffemodel")
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(net.blobs["data"].data.astype(np.float64))
    np.testing.assert_allclose(activation_lastconv, run(x)["CAM_conv"].numpy(), rtol=1e-4,
                               atol=1e-4)
    # a forward that stops at the convolution leaves its (pre-ReLU) output in the blob's one
    # buffer, which the seed's activation_lastconv is a view of, as in Caffe
    assert np.any(net.forward(end=last_conv)[last_conv] < 0)
    assert np.any(activation_lastconv < 0)


# --- seed 004: one-class net surgery, then a diff of 1 at its single output -----------------------

def vgg128(batch, last, classes, *, softmax, force_backward):
    text = f"""name: "VGG_128_ft"
input: "data"
input_dim: {batch}
input_dim: 3
input_dim: 224
input_dim: 224
{"force_backward: true" if force_backward else ""}
layer {{
  bottom: "data"
  top: "conv1"
  name: "conv1"
  type: "Convolution"
  convolution_param {{
    num_output: 96
    kernel_size: 7
    stride: 2
  }}
}}
layer {{ bottom: "conv1" top: "conv1" name: "relu1" type: "ReLU" }}
layer {{ bottom: "conv1" top: "pool1" name: "pool1" type: "Pooling"
  pooling_param {{ pool: MAX kernel_size: 3 stride: 3 }} }}
layer {{ bottom: "pool1" top: "conv2" name: "conv2" type: "Convolution"
  convolution_param {{ num_output: 16 kernel_size: 3 stride: 2 }} }}
layer {{ bottom: "conv2" top: "conv2" name: "relu2" type: "ReLU" }}
layer {{ bottom: "conv2" top: "pool2" name: "pool2" type: "Pooling"
  pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}
layer {{ bottom: "pool2" top: "fc6" name: "fc6" type: "InnerProduct"
  inner_product_param {{ num_output: 32 }} }}
layer {{ bottom: "fc6" top: "fc6" name: "relu6" type: "ReLU" }}
layer {{ bottom: "fc6" top: "fc7" name: "fc7" type: "InnerProduct"
  inner_product_param {{ num_output: 32 }} }}
layer {{ bottom: "fc7" top: "fc7" name: "relu7" type: "ReLU" }}
layer {{
  bottom: "fc7"
  top: "{last}"
  name: "{last}"
  type: "InnerProduct"
  inner_product_param {{
    num_output: {classes}
  }}
}}
"""
    if softmax:
        text += f"""layer {{
  name: "prob"
  type: "Softmax"
  bottom: "{last}"
  top: "prob"
}}
"""
    return text


def test_seed_004_oneclass_net_surgery(tmp_path, monkeypatch, helpers):
    random_caffemodel = helpers.random_caffemodel
    torch_net, torch_input_grad = helpers.torch_net, helpers.torch_input_grad
    write(tmp_path / "deploy.prototxt", vgg128(50, "fc8", 1000, softmax=True, force_backward=False))
    write(tmp_path / "deploy_oneclass.prototxt",
          vgg128(1, "fc8_oneclass", 1, softmax=False, force_backward=True))
    random_caffemodel(tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel", seed=4,
                      first_gain=FIRST_GAIN)
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("im.png", photo(224, 224, seed=5))

    # ---- seed 004 as written ----
    # load full net
    net = caffe.Net("deploy.prototxt", "model.caffemodel", caffe.TEST)
    # load oneclass net
    with pytest.warns(UserWarning, match="fc8_oneclass"):     # not in model.caffemodel: fillers
        net_oneclass = caffe.Net("deploy_oneclass.prototxt", "model.caffemodel", caffe.TEST) 

    net_oneclass.params['fc8_oneclass'][0].data[0] =  net.params['fc8'][0].data[31]
    net_oneclass.params['fc8_oneclass'][1].data[0] =  net.params['fc8'][1].data[31]

    # "Assume we have loaded an image into the variable 'im'"
    transformer = caffe.io.Transformer({'data': net_oneclass.blobs['data'].data.shape})
    transformer.set_transpose('data', (2, 0, 1))
    transformer.set_mean('data', np.array([104.0, 117.0, 123.0]))
    transformer.set_raw_scale('data', 255)
    transformer.set_channel_swap('data', (2, 1, 0))
    im = transformer.preprocess('data', caffe.io.load_image("im.png"))

    out = net_oneclass.forward_all(data=np.asarray([im])) 

    net_oneclass.blobs['fc8_oneclass'].diff[0][0] = 1
    diffs = net_oneclass.backward() 

    sal_map = diffs['data'][0]
    sal_map = np.absolute(sal_map).max(axis=0)   # the post writes sal_im here: a typo
    # ---- end of seed 004 ----

    assert net.blobs["data"].data.shape == (50, 3, 224, 224)
    assert out["fc8_oneclass"].shape == (1, 1) and sal_map.shape == (224, 224)
    run = torch_net(tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel")
    torch = pytest.importorskip("torch")
    full = run(torch.from_numpy(im[None].astype(np.float64)))
    np.testing.assert_allclose(out["fc8_oneclass"][0, 0], full["fc8"][0, 31].item(), rtol=1e-4,
                               atol=1e-5)
    onehot = np.zeros((1, 1000))
    onehot[0, 31] = 1
    expected = torch_input_grad(run, im[None], "fc8", onehot)
    assert_grad_close(diffs["data"], expected)

    # ---- the reply: one net, input 1, the final layer deleted, a one-hot diff at fc8 ----
    write(tmp_path / "deploy_reply.prototxt",
          vgg128(1, "fc8", 1000, softmax=False, force_backward=True))
    net = caffe.Net("deploy_reply.prototxt", "model.caffemodel", caffe.TEST)
    net.forward(data=np.asarray([im]))
    label = np.zeros((1,1,1,1000))
    label[0,0,0,31] = 1
    net.blobs['fc8'].diff[0] = label
    reply = net.backward()
    np.testing.assert_allclose(reply["data"], diffs["data"], rtol=1e-5, atol=1e-6 * np.abs(
        diffs["data"]).max())
