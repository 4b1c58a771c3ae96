"""Peak memory of train_sgd on MNIST (measured in a subprocess).

The growth over the loaded data is the data's tensor (none for float32 from
``preprocess``, whose arrays are 64-byte aligned; 47 MB for uint8 images)
plus the first XLA compilation of the process (~115 MB measured: compiler,
thread pools); never a copy per epoch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The bound: peak resident memory while training ≤ resident memory after loading + this.
MAX_GROWTH_MB = 200

# Loads MNIST, builds the model (TensorFlow initialised), then reads VmRSS; resets
# the high-water mark (/proc/self/clear_refs, 5) and trains; reads VmHWM.
SCRIPT = r"""
import json, sys
import numpy as np
from tfsoftmax import reference
from tfsoftmax.datasets import load_mnist, preprocess
from tfsoftmax.models import notebook_model
from tfsoftmax.training import train_sgd

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

(x, y), (xt, yt) = load_mnist()
data = preprocess(x, y, xt, yt, layout="batch-major", dtype="float32")
labels = data.labels_train
# float32: preprocess's output (64-byte aligned), which train_sgd uses without a
# copy; uint8: the loaded images as they are (train_sgd copies them once, 47 MB).
features = x.reshape(60000, -1) if sys.argv[1] == "uint8" else data.x_train
del x, xt, data
initial = reference.Dense(784, 10, rng=np.random.default_rng(0), dtype="float32").weights
input_dtype = None if sys.argv[1] == "float32" else "uint8"
model, loss = notebook_model("custom", initial, input_dtype=input_dtype)
loaded = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
train_sgd(model, features, labels, epochs=3, loss=loss, verbose=0)
print(json.dumps({"loaded": loaded, "peak": status("VmHWM")}))
"""


def _measure(kind):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, kind], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("kind", ["float32", "uint8"])
def test_peak_memory_while_training_mnist_stays_within_200_mb_of_the_loaded_data(kind):
    measured = _measure(kind)
    assert measured["peak"] - measured["loaded"] <= MAX_GROWTH_MB, measured
