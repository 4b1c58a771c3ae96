"""How many BLAS threads the NumPy reference uses: one, chosen on purpose.

The reference's work per batch is two small products, ``Z = W [X_b; 1]`` with
``W (10, 785)``, ``X_b (784, 200)``, and ``∂L/∂W = G [X_b; 1]ᵀ``. Split over
two threads, each half is too small to pay for the hand-off, and when the
machine is busy the waiting threads spin against the other work. Measured on
the 2-core CPU these docs were written on while other jobs kept both cores
busy (load average 5–6; full MNIST, the notebook's settings, float64,
``reference.train`` as ``tfsoftmax compare`` calls it, two rounds of three
epochs per setting)::

    BLAS threads                    seconds per epoch
    1                               1.85–2.55
    2 (NumPy's default here)        9.0–19.6

``tfsoftmax bench`` (which also runs the reference with one thread) found one
thread the fastest on a quiet machine too (0.1 s per epoch). So ``tfsoftmax
compare`` and ``tfsoftmax train --impl numpy`` run the reference inside
:func:`reference_blas_threads`, one thread. The limit is set with ``threadpoolctl``
(a dependency of tfsoftmax) for the duration of the block only; without it the
block runs with whatever ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` say.
"""

import contextlib
import os

__all__ = ["REFERENCE_BLAS_THREADS", "reference_blas_threads"]

#: BLAS threads for the NumPy reference (see the table above).
REFERENCE_BLAS_THREADS = 1


@contextlib.contextmanager
def reference_blas_threads(threads=REFERENCE_BLAS_THREADS):
    """Run the block with NumPy's BLAS limited to ``threads``; yields what was done.

    >>> with reference_blas_threads() as setting:
    ...     print(setting)
    1 BLAS thread (threadpoolctl)
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        setting = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        yield f"BLAS threads unchanged (OPENBLAS_NUM_THREADS={setting})"
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield f"{threads} BLAS thread{'s' if threads != 1 else ''} (threadpoolctl)"
