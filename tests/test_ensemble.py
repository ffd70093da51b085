"""fastnn.ensemble.Bagging."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.ensemble import Bagging


def blobs(n=300, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 3
    y = rng.integers(0, k, n)
    return (centers[y] + rng.standard_normal((n, d))).astype(np.float32), y


def bag(n=4):
    return Bagging(lambda: nn.Sequential(nn.Linear(4, 3)), n,
                   lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
                   nn.CrossEntropyLoss())


def test_members_see_different_bootstrap_samples_and_average_probabilities():
    fastnn.manual_seed(0)
    x, y = blobs()
    b = bag().fit(x, y, epochs=5)
    assert len(b.members) == 4
    assert all(len(s) == len(x) for s in b.samples)
    assert len({s.tobytes() for s in b.samples}) == 4
    # a bootstrap sample leaves out about 1/e of the data
    frac_out = [1 - len(np.unique(s)) / len(x) for s in b.samples]
    assert all(0.25 < f < 0.48 for f in frac_out)
    p = b.predict_proba(x)
    manual = np.mean([t.predict(x, proba=True) for t in b.members], axis=0)
    np.testing.assert_allclose(p, manual, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    assert (b.predict(x) == y).mean() > 0.9
    assert 0.8 < b.oob_score(x, y) <= 1.0


def test_bagging_is_reproducible():
    x, y = blobs()
    runs = []
    for _ in range(2):
        fastnn.manual_seed(3)
        runs.append(bag(3).fit(x, y, epochs=2).predict_proba(x))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_bagging_errors():
    x, y = blobs(n=20)
    with pytest.raises(ValueError, match="n_models"):
        bag(0)
    with pytest.raises(RuntimeError, match="fit"):
        bag().predict(x)
    with pytest.raises(ValueError, match="samples"):
        bag().fit(x, y[:10])
    with pytest.raises(TypeError, match="Module"):
        Bagging(lambda: 3, 2, lambda m: None, nn.CrossEntropyLoss()).fit(x, y)
