"""Small training problems shared by the test modules (imported as ``problems``).

:func:`linear_problem` draws ``x ~ U(0, 1)^(samples × features)`` and labels
``argmax(x · M)`` for a random ``M`` — classes a softmax regression can learn —
and the notebook's initial bias-trick weights for that shape.
"""

import numpy as np

from tfsoftmax import reference


def linear_problem(samples=103, features=6, classes=4, seed=1):
    """``(x, labels, one_hot, initial_weights)`` in float64, from ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (samples, features))
    labels = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    initial = reference.Dense(features, classes, rng=np.random.default_rng(seed)).weights
    return x, labels, np.eye(classes)[labels], initial
