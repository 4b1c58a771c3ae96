"""A training run in its own process, for the checkpoint and determinism tests.

Trains the notebook's model with :func:`tfsoftmax.training.train_sgd` on a
real-MNIST subset and writes the final variables and history to ``--out``
(``.npz``). Hooks make it die by SIGKILL at a chosen moment:

* ``--kill-epoch E --kill-batch B``: in epoch ``E`` (1-based), as soon as the
  batches up to ``B`` have been trained (the weights are half-way through the
  epoch in memory);
* ``--kill-in-save N --kill-point before-merge|after-merge``: during the
  ``N``-th checkpoint write, after TensorFlow has written the files into its
  temporary folder but before they are renamed into place, or after the
  rename but before the ``CheckpointManager`` has recorded the checkpoint.

``--announce`` prints ``training`` (flushed) just before ``train_sgd`` starts,
so a test can kill the run at a random moment of its training.

Run as ``python tests/checkpoint_worker.py --out result.npz [...]``.
"""

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

SAMPLES = 3050  # 30 batches of 100 and a partial batch of 50
VALIDATION = 1000
BATCH_SIZE = 100


def _die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _install_kill_hooks(args):
    from tfsoftmax import training

    if args.kill_epoch is not None:
        check_finite = training._check_finite

        def killing_check_finite(batch_losses, start, stop, epoch, *rest):
            check_finite(batch_losses, start, stop, epoch, *rest)
            if epoch + 1 == args.kill_epoch and stop >= args.kill_batch:
                _die()

        training._check_finite = killing_check_finite

    if args.kill_in_save is not None:
        from tensorflow.python.checkpoint import functional_saver

        merge = functional_saver.gen_io_ops.merge_v2_checkpoints
        saves = {"count": 0}

        def killing_merge(*merge_args, **merge_kwargs):
            saves["count"] += 1
            if saves["count"] == args.kill_in_save and args.kill_point == "before-merge":
                _die()
            result = merge(*merge_args, **merge_kwargs)
            if saves["count"] == args.kill_in_save and args.kill_point == "after-merge":
                _die()
            return result

        functional_saver.gen_io_ops.merge_v2_checkpoints = killing_merge


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--impl", default="custom")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--kill-epoch", type=int)
    parser.add_argument("--kill-batch", type=int, default=12)
    parser.add_argument("--kill-in-save", type=int)
    parser.add_argument("--kill-point", choices=("before-merge", "after-merge"))
    parser.add_argument("--announce", action="store_true")
    args = parser.parse_args()

    import numpy as np

    from tfsoftmax import reference
    from tfsoftmax.datasets import load_mnist, preprocess
    from tfsoftmax.models import notebook_model
    from tfsoftmax.training import train_sgd

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(
        x_train[: args.samples],
        y_train[: args.samples],
        x_test[:VALIDATION],
        y_test[:VALIDATION],
        layout="batch-major",
        dtype=args.dtype,
    )
    initial = reference.Dense(
        784, 10, rng=np.random.default_rng(args.seed), dtype=args.dtype
    ).weights
    model, loss = notebook_model(args.impl, initial, dtype=args.dtype)
    _install_kill_hooks(args)
    if args.announce:
        print("training", flush=True)
    history = train_sgd(
        model,
        data.x_train,
        data.y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        loss=loss,
        validation_data=(data.x_test, data.y_test),
        verbose=1 if args.kill_epoch is not None else 0,
        checkpoint_dir=args.checkpoint_dir,
    )
    variables = {f"v{i}": v.numpy() for i, v in enumerate(model.variables)}
    record = {"history": history.history, "epoch": history.epoch, "params": history.params}
    temporary = args.out + ".part.npz"
    np.savez(temporary, history=np.array(json.dumps(record)), **variables)
    os.replace(temporary, args.out)


if __name__ == "__main__":
    main()
