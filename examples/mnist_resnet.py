"""A small ResNet on MNIST: at most 0.6% test error.

The model is ``fastnn.models.resnet`` (He, Zhang, Ren & Sun 2016, basic
blocks): a stem conv3x3-16 (no bias), BN, ReLU, maxpool 2 (28x28 -> 14x14);
three stages of two basic blocks (conv3x3, BN, ReLU, conv3x3, BN, added to
the shortcut, ReLU) with 16, 32 and 64 channels at 14x14, 7x7 and 4x4, the
first block of stages 2 and 3 with stride 2 and the projection shortcut
Sequential(Conv2d(c, 2c, 1, stride=2), BatchNorm2d(2c)); global average
pooling; fc-10. 13 convolutions + fc, 174,970 parameters.

Training: AdamW (weight decay 5e-4), one-cycle learning rate peaking at
3e-3, batch 128, label smoothing 0.1, random affine distortions of every
training batch (rotation up to 10 degrees, shift up to 10%, scale 0.9-1.1),
a fixed number of epochs; the result is the final epoch's test error (no
selection on the test set).

    python examples/mnist_resnet.py --data-dir ../shared/data/mnist [--epochs 8]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _mnist_cnn  # noqa: E402

from fastnn import models  # noqa: E402

GOAL = "<= 0.6%"


def main(argv=None):
    args = _mnist_cnn.parser(__doc__, epochs=8, lr=3e-3, weight_decay=5e-4,
                             label_smoothing=0.1, degrees=10, translate=0.1,
                             scale=0.1).parse_args(argv)
    return _mnist_cnn.run(args, lambda: models.resnet((1, 28, 28), 10),
                          "small ResNet (2-2-2 basic blocks, 16-32-64), MNIST, affine "
                          "augmentation", GOAL)


if __name__ == "__main__":
    main()
