"""``caffe.Classifier``: a Net that resizes, crops (or oversamples) and classifies images."""
from __future__ import annotations

import numpy as np

from caffe_port.pycaffe import io
from caffe_port.pycaffe._net import Net
from caffe_port.pycaffe.proto.caffe_pb2 import TEST


class Classifier(Net):
    """Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
    raw_scale=None, channel_swap=None): a TEST-phase Net whose first input gets a Transformer
    with transpose (2, 0, 1) and the given settings. Images are resized to ``image_dims``
    (default: the input's H × W) before cropping to the input's H × W."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = io.Transformer({in_: self.blobs[in_].data.shape})
        self.transformer.set_transpose(in_, (2, 0, 1))
        if mean is not None:
            self.transformer.set_mean(in_, mean)
        if input_scale is not None:
            self.transformer.set_input_scale(in_, input_scale)
        if raw_scale is not None:
            self.transformer.set_raw_scale(in_, raw_scale)
        if channel_swap is not None:
            self.transformer.set_channel_swap(in_, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or len(image_dims) == 0 \
            else image_dims

    def predict(self, inputs, oversample=True):
        """(N, classes) probabilities of N (H, W, K) images: the mean over the 10 crops of
        ``io.oversample`` when ``oversample``, else of the centre crop."""
        height, width = (int(d) for d in self.image_dims)
        resized = np.zeros((len(inputs), height, width, inputs[0].shape[2]), dtype=np.float32)
        for n, image in enumerate(inputs):
            resized[n] = io.resize_image(image, (height, width))
        crop_h, crop_w = (int(d) for d in self.crop_dims)
        if oversample:
            crops = io.oversample(resized, (crop_h, crop_w))
        else:
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            crops = resized[:, top:top + crop_h, left:left + crop_w, :]
        in_ = self.inputs[0]
        caffe_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
