"""Ready-made convolutional networks for small grey-scale images (the bundled
8x8 digits, 28x28 MNIST and anything of that kind): the models behind
``fastnn train --model lenet5|cnn|cnn-bn|resnet``, the MNIST examples in
examples/ and the ``train/lenet`` benchmark case.

Each builder takes the input shape ``(channels, height, width)`` and the
number of classes and returns an ``nn.Sequential`` over NCHW float32
batches; the layers adapt to the image size (8x8 or 28x28, or any size from
8x8 up) so that the same architecture runs on both.

* ``lenet5``: LeNet-5 (LeCun et al. 1998, C1-S2-C3-S4-C5-F6-output) in its
  modern form: ReLU instead of the scaled tanh, max pooling instead of the
  trainable subsampling, full C3 connectivity instead of the partial table,
  a linear output layer with softmax cross-entropy instead of the RBF units.
* ``cnn``: the LeNet-style CNN of the benchmark (two 5x5 convolutions with 32
  and 64 channels, max pooling, fc-1024, fc-classes).
* ``cnn_bn``: a 3x3 CNN with batch normalisation after every convolution.
* ``resnet``: a small ResNet (He et al. 2016): a 3x3 stem and three stages of
  two basic blocks, widths ``width, 2 width, 4 width``; global average pool.
"""
from . import nn

__all__ = ["lenet5", "cnn", "cnn_bn", "resnet", "basic_block", "MODELS", "build"]


def _shape(who, input_shape, num_classes):
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in input_shape)):
        raise TypeError(f"{who}: input_shape must be (channels, height, width) integers, "
                        f"got {input_shape!r}")
    c, h, w = input_shape
    if c < 1 or h < 8 or w < 8:
        raise ValueError(f"{who}: input_shape needs channels >= 1 and images of at least "
                         f"8x8 pixels, got {tuple(input_shape)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{who}: num_classes must be an integer >= 2, got {num_classes!r}")
    return c, h, w


def lenet5(input_shape=(1, 28, 28), num_classes=10):
    """LeNet-5, modern variant (ReLU, max pooling, full C3, linear output):
    C1 conv5x5-6 (padding 2, as the paper's 32x32 frame around a 28x28
    digit), S2 maxpool 2, C3 conv5x5-16, S4 maxpool 2, C5 conv-120 over the
    whole remaining map (5x5 on 28x28 input), F6 fc-84, output fc-classes.
    On images smaller than 28x28, C3 pads by 2 when its 5x5 window would not
    leave a 2x2 map (8x8: 8 -> 4 -> 4 -> 2 -> C5 2x2 -> 1)."""
    c, h, w = _shape("lenet5", input_shape, num_classes)
    h, w = h // 2, w // 2                        # C1 'same', S2
    pad3 = 0 if min(h, w) - 4 >= 4 else 2        # C3 valid when the map stays >= 4x4
    h, w = (h + 2 * pad3 - 4) // 2, (w + 2 * pad3 - 4) // 2   # C3, S4
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=pad3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 120, (h, w)), nn.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes))


def cnn(input_shape=(1, 28, 28), num_classes=10, hidden=1024, dropout=0.0):
    """The LeNet-style CNN: conv5x5-32 (padding 2), ReLU, maxpool 2,
    conv5x5-64 (padding 2), ReLU, maxpool 2, fc-``hidden``, ReLU,
    [Dropout(``dropout``)], fc-classes (3.27 M parameters on 28x28)."""
    c, h, w = _shape("cnn", input_shape, num_classes)
    layers = [nn.Conv2d(c, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
              nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
              nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, num_classes))
    return nn.Sequential(*layers)


def _conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def cnn_bn(input_shape=(1, 28, 28), num_classes=10, hidden=128, dropout=0.0):
    """The batch-normalised CNN: conv3x3-32 (no bias), BN, ReLU, conv3x3-32,
    BN, ReLU, maxpool 2, conv3x3-64, BN, ReLU, maxpool 2, fc-``hidden``,
    ReLU, [Dropout(``dropout``)], fc-classes; 3x3 convolutions with padding 1."""
    c, h, w = _shape("cnn_bn", input_shape, num_classes)
    layers = (_conv_bn_relu(c, 32) + _conv_bn_relu(32, 32) + [nn.MaxPool2d(2)]
              + _conv_bn_relu(32, 64) + [nn.MaxPool2d(2), nn.Flatten(),
                                         nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU()])
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, num_classes))
    return nn.Sequential(*layers)


def basic_block(cin, cout, stride=1):
    """ResNet's basic block, followed by its ReLU: relu(bn(conv(relu(bn(conv(x)))))
    + shortcut(x)), 3x3 convolutions without bias; the shortcut is the
    identity, or ``Sequential(Conv2d(cin, cout, 1, stride), BatchNorm2d(cout))``
    when the shape changes."""
    block = nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                 nn.BatchNorm2d(cout))
    return nn.Sequential(nn.Residual(block, shortcut), nn.ReLU())


def resnet(input_shape=(1, 28, 28), num_classes=10, width=16, blocks=(2, 2, 2), stem_pool=None):
    """A small ResNet: stem conv3x3-``width`` (no bias), BN, ReLU; stages of
    ``blocks[i]`` basic blocks with ``width * 2**i`` channels, the first
    block of every stage after the first with stride 2 and a projection
    shortcut (28x28, whose stem max-pools to 14x14 when ``stem_pool`` is
    None and the image is 16 px or more: stages at 14, 7, 4; 8x8: 8, 4, 2);
    global average pool, fc-classes. The default is 2-2-2 blocks of 16-32-64 channels (14 layers
    with weights, 0.17 M parameters)."""
    c, h, w = _shape("resnet", input_shape, num_classes)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"resnet: width must be a positive integer, got {width!r}")
    if (not isinstance(blocks, (tuple, list)) or not blocks
            or not all(isinstance(b, int) and b >= 1 for b in blocks)):
        raise ValueError(f"resnet: blocks must be a non-empty sequence of positive block "
                         f"counts, got {blocks!r}")
    if stem_pool is None:
        stem_pool = min(h, w) >= 16
    layers = [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    if stem_pool:
        layers.append(nn.MaxPool2d(2))
    cin = width
    for i, n in enumerate(blocks):
        cout = width * 2 ** i
        for j in range(n):
            layers.append(basic_block(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


MODELS = {"lenet5": lenet5, "cnn": cnn, "cnn-bn": cnn_bn, "resnet": resnet}


def build(name, input_shape=(1, 28, 28), num_classes=10, **kwargs):
    """``build('cnn-bn', (1, 8, 8), 10)``: a model of MODELS by name."""
    if name not in MODELS:
        raise ValueError(f"models.build: unknown model {name!r} (available: "
                         f"{', '.join(MODELS)})")
    return MODELS[name](tuple(input_shape), num_classes, **kwargs)
