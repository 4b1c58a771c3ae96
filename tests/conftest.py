"""Shared test settings: quiet TensorFlow, and the real MNIST loaded once."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
