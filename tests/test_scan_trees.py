"""The calibrated scorer's trees evaluated with numpy give the library's probabilities."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from labelaudit.scan.calibrator import fit_model
from labelaudit.scan.trees import ShallowForest


def _rows(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label depends on two features, a tenth of the values missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + 0.5 * x[:, 3] ** 2 + rng.normal(scale=0.5, size=n)) > 0.5
    x[rng.random(x.shape) < 0.1] = np.nan
    return x, y


def test_the_forest_gives_the_library_probabilities_missing_values_included():
    x, y = _rows()
    model = fit_model(x, y)
    forest = ShallowForest.of(model)
    assert forest is not None and forest.feature.shape == (3, 200)
    test, _ = _rows(2000, seed=1)
    want = model.predict_proba(test)[:, 1]
    got = forest.predict(test)
    assert np.abs(got - want).max() < 1e-12
    assert want.std() > 0.1  # the trees do split: a constant would pass the check above


def test_models_it_cannot_read_exactly_are_left_to_the_library():
    x, y = _rows()
    deeper = HistGradientBoostingClassifier(max_iter=20, max_depth=3, random_state=0).fit(x, y)
    three = HistGradientBoostingClassifier(max_iter=5, max_depth=2).fit(x, np.arange(len(y)) % 3)
    assert ShallowForest.of(deeper) is None and ShallowForest.of(three) is None
    stumps = HistGradientBoostingClassifier(max_iter=20, max_depth=1).fit(x, y)  # leaf children
    assert np.abs(ShallowForest.of(stumps).predict(x) - stumps.predict_proba(x)[:, 1]).max() < 1e-12


def test_rows_of_another_width_are_refused():
    x, y = _rows()
    with pytest.raises(ValueError, match="6 features"):
        ShallowForest.of(fit_model(x, y)).predict(x[:, :5])
