"""A batch-normalised CNN on MNIST with augmentation: at most 0.5% test error.

The model is ``fastnn.models.cnn_bn``: conv3x3-32 (no bias), BN, ReLU,
conv3x3-32, BN, ReLU, maxpool 2, conv3x3-64, BN, ReLU, maxpool 2, fc-128,
ReLU, fc-10 (431,018 parameters; batch normalisation of Ioffe & Szegedy 2015
after every convolution).

Training: AdamW (weight decay 5e-4), one-cycle learning rate peaking at
3e-3, batch 128, label smoothing 0.1, random affine distortions of every
training batch (rotation up to 10 degrees, shift up to 10%, scale 0.9-1.1),
a fixed number of epochs; the result is the final epoch's test error (no
selection on the test set).

    python examples/mnist_bn_cnn.py --data-dir ../shared/data/mnist [--epochs 8]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _mnist_cnn  # noqa: E402

from fastnn import models  # noqa: E402

GOAL = "<= 0.5%"


def main(argv=None):
    args = _mnist_cnn.parser(__doc__, epochs=8, lr=3e-3, weight_decay=5e-4,
                             label_smoothing=0.1, degrees=10, translate=0.1,
                             scale=0.1).parse_args(argv)
    return _mnist_cnn.run(args, lambda: models.cnn_bn((1, 28, 28), 10),
                          "BN CNN (3x3 32-32-64, fc-128), MNIST, affine augmentation", GOAL)


if __name__ == "__main__":
    main()
