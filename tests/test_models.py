"""fastnn.models: shapes and sizes on 8x8 and 28x28 images, torch parity of a
training step on the same weights, eval mode, save/load and fuse_conv_bn."""
import numpy as np
import pytest

import fastnn
from fastnn import models, nn
from fastnn.nn.utils import fuse_conv_bn

try:
    import torch
except ImportError:
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")

# parameters on 28x28 / 8x8 single-channel images, 10 classes
SIZES = {"lenet5": (61706, 21386), "cnn": (3274634, 325514), "cnn-bn": (431018, 62378),
         "resnet": (174970, 174970)}


def _images(n, h, seed=0):
    return np.random.default_rng(seed).random((n, 1, h, h), dtype=np.float32)


@pytest.mark.parametrize("name", list(models.MODELS))
@pytest.mark.parametrize("h", [28, 8])
def test_models_adapt_to_the_image_size(name, h):
    fastnn.manual_seed(0)
    m = models.build(name, (1, h, h), 10)
    assert m.num_parameters() == SIZES[name][0 if h == 28 else 1]
    x = _images(4, h)
    out = m(x)
    assert out.shape == (4, 10) and out.dtype == np.float32 and np.all(np.isfinite(out))
    dx = m.backward(np.ones_like(out), input_grad=True)
    assert dx.shape == x.shape and np.any(dx != 0)


def test_model_options_and_other_shapes():
    fastnn.manual_seed(0)
    assert fastnn.models.lenet5 is models.lenet5         # public after `import fastnn`
    assert models.resnet((3, 32, 32), 5, width=8, blocks=(1, 1))(_images(2, 32).repeat(3, 1)
                                                               ).shape == (2, 5)
    assert models.lenet5((1, 12, 9), 3)(np.zeros((2, 1, 12, 9), np.float32)).shape == (2, 3)
    m = models.cnn((1, 28, 28), 10, hidden=64, dropout=0.5)
    assert any(isinstance(c, nn.Dropout) for c in m) and m[7].out_features == 64
    # the benchmark's LeNet-style CNN is this one
    from fastnn.benchmark import cases_conv
    assert repr(cases_conv.fastnn_lenet()) == repr(models.cnn((1, 28, 28), 10))


@pytest.mark.parametrize("call, err, msg", [
    (lambda: models.lenet5((28, 28), 10), TypeError, "input_shape must be (channels, height"),
    (lambda: models.cnn((1, 4, 4), 10), ValueError, "at least 8x8"),
    (lambda: models.cnn_bn((1, 28, 28), 1), ValueError, "num_classes"),
    (lambda: models.resnet((1, 28, 28), 10, width=0), ValueError, "width"),
    (lambda: models.resnet((1, 28, 28), 10, blocks=()), ValueError, "blocks"),
    (lambda: models.build("vgg"), ValueError, "unknown model 'vgg'"),
])
def test_bad_arguments(call, err, msg):
    with pytest.raises(err, match=msg.replace("(", r"\(")):
        call()


# ------------------------------------------------------- torch parity --

class _TorchResidual(torch.nn.Module if torch else object):
    def __init__(self, block, shortcut):
        super().__init__()
        self.block, self.shortcut = block, shortcut

    def forward(self, x):
        return self.block(x) + (x if self.shortcut is None else self.shortcut(x))


def _to_torch(m):
    """The same architecture in torch, module for module (same state_dict keys)."""
    T = torch.nn
    if isinstance(m, nn.Sequential):
        return T.Sequential(*[_to_torch(c) for c in m])
    if isinstance(m, nn.Residual):
        return _TorchResidual(_to_torch(m.block),
                              None if m.shortcut is None else _to_torch(m.shortcut))
    if isinstance(m, nn.Conv2d):
        return T.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                        bias=m.bias is not None)
    if isinstance(m, nn.BatchNorm2d):
        return T.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum)
    if isinstance(m, nn.Linear):
        return T.Linear(m.in_features, m.out_features)
    simple = {nn.ReLU: T.ReLU, nn.Flatten: T.Flatten}
    if type(m) in simple:
        return simple[type(m)]()
    if isinstance(m, nn.MaxPool2d):
        return T.MaxPool2d(m.kernel_size)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return T.AdaptiveAvgPool2d(1)
    raise AssertionError(f"no torch twin for {type(m).__name__}")


@needs_torch
@pytest.mark.parametrize("name, h", [("resnet", 28), ("cnn-bn", 8), ("lenet5", 28)])
def test_training_step_matches_torch(name, h):
    fastnn.manual_seed(1)
    fm = models.build(name, (1, h, h), 10)
    tm = _to_torch(fm).double()
    tm.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float64) if v.dtype != np.int64
                                            else v) for k, v in fm.state_dict().items()})
    x, y = _images(8, h, seed=2), np.arange(8) % 10
    loss = nn.CrossEntropyLoss()
    out = fm(x)
    lf = loss(out, y)
    fm.zero_grad()
    dx = fm.backward(loss.backward(), input_grad=True)
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    ot = tm(xt)
    lt = torch.nn.functional.cross_entropy(ot, torch.from_numpy(y))
    lt.backward()
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-3, atol=1e-4)
    assert lf == pytest.approx(lt.item(), rel=1e-4)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=2e-2, atol=2e-5)
    tparams = dict(tm.named_parameters())
    for k, p in fm.named_parameters():
        g = tparams[k].grad.numpy()
        np.testing.assert_allclose(p.grad, g, rtol=2e-2, atol=2e-4 * np.abs(g).max(), err_msg=k)
    for k, v in tm.state_dict().items():        # running statistics after the step
        if "running" in k:
            np.testing.assert_allclose(fm.state_dict()[k], v.numpy(), rtol=1e-4, atol=1e-6)
    fm.eval()
    tm.eval()
    with torch.no_grad():
        np.testing.assert_allclose(fm(x), tm(xt).numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet", "cnn-bn"])
def test_eval_save_load_and_fuse(name, tmp_path):
    fastnn.manual_seed(3)
    m = models.build(name, (1, 8, 8), 10)
    x = _images(16, 8, seed=4)
    for _ in range(3):                          # move the running statistics
        m(x * 2.0 + 0.5)
        m.clear_contexts()
    state = {k: v.copy() for k, v in m.state_dict().items()}
    with fastnn.no_grad():
        batch_stats = m(x)                      # training mode: the batch's statistics
    m.load_state_dict(state)                    # (undo that forward's running-stat update)
    m.eval()
    with fastnn.no_grad():
        ref = m(x)
    assert not np.allclose(ref, batch_stats, atol=1e-3)   # eval uses the running statistics
    fastnn.save(m, tmp_path / "m.npz")
    m2 = fastnn.load(tmp_path / "m.npz")
    m2.eval()
    np.testing.assert_array_equal(m2(x), ref)
    f = fuse_conv_bn(m2)
    assert not any(isinstance(c, nn.BatchNorm2d) for c in f.modules())
    np.testing.assert_allclose(f(x), ref, rtol=1e-4, atol=1e-5)
