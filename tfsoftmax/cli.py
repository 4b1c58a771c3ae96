"""The ``tfsoftmax`` command: train, compare, gradcheck and more.

Every bad argument ends in one line on stderr and exit code 2, never a
traceback; a failure while running (no MNIST available, a diverged run) ends
in one line and exit code 1.
"""

import argparse
import dataclasses
import math
import os
import sys
import time

from tfsoftmax import __version__

NOTEBOOK = {"epochs": 20, "batch_size": 200, "learning_rate": 0.01, "seed": 0}
# tfsoftmax.distribute.STRATEGIES, without importing TensorFlow to build the parser.
STRATEGIES = ("mirrored", "multiworker")


class UsageError(Exception):
    """A bad argument found after parsing; reported with exit code 2."""


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr (no usage block), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text):
    return " ".join(str(text).split())


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _add_training_options(parser, default_dtype):
    group = parser.add_argument_group("training (the notebook's settings by default)")
    group.add_argument("--epochs", type=_positive_int, default=NOTEBOOK["epochs"])
    group.add_argument("--batch-size", type=_positive_int, default=NOTEBOOK["batch_size"])
    group.add_argument("--learning-rate", type=_positive_float, default=NOTEBOOK["learning_rate"])
    group.add_argument(
        "--seed", type=int, default=NOTEBOOK["seed"], help="initial weights and batch order"
    )
    group.add_argument("--dtype", choices=("float32", "float64"), default=default_dtype)
    group.add_argument(
        "--softmax-method",
        choices=("jacobian", "vjp"),
        default="jacobian",
        help="backward of the custom softmax op (default: %(default)s)",
    )
    group.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="train on the first N training samples only (a quick look)",
    )


def build_parser():
    parser = _OneLineErrorParser(
        prog="tfsoftmax",
        description="A hand-derived softmax classifier on MNIST: custom-gradient TensorFlow "
        "ops, Keras layers, a fast SGD trainer, and the proof that they agree with a NumPy "
        "reference and Keras built-ins.",
    )
    parser.add_argument("--version", action="version", version=f"tfsoftmax {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train the notebook's classifier on MNIST and write history, model and figures",
        description="Train the notebook's softmax classifier on MNIST with mini-batch SGD and "
        "write history.json, history.csv, model.keras, weights.npy and the figures to --out.",
    )
    train.add_argument(
        "--impl",
        choices=("custom", "numpy", "keras"),
        default="custom",
        help="custom: the custom-gradient ops with train_sgd; numpy: the NumPy reference; "
        "keras: Keras built-ins with train_sgd (default: %(default)s)",
    )
    _add_training_options(train, default_dtype="float32")
    train.add_argument("--out", default="out/train", help="output folder (default: %(default)s)")
    train.add_argument(
        "--preset",
        choices=("best",),
        help="best: the most a linear softmax classifier gets on MNIST (~92.6%% test "
        "accuracy, 60 epochs, batch 100, learning rate 0.5 -> 0.01 in steps; a few seconds); "
        "sets epochs, batch size and learning rate (custom ops, train_sgd)",
    )
    train.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="save a checkpoint after every epoch to DIR; run the same command again to "
        "resume after the last completed epoch (custom and keras only)",
    )
    train.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="0 silent, 1 progress bar, 2 one line per epoch (default: %(default)s)",
    )
    scaling = train.add_argument_group("scaling out (tf.distribute; see README 'Scaling out')")
    scaling.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="mirrored: the devices of this machine; multiworker: several processes or "
        "machines, described by the TF_CONFIG environment variable (default: one device, "
        "or mirrored when --devices is given)",
    )
    scaling.add_argument(
        "--devices",
        type=_positive_int,
        metavar="N",
        help="replicas on this machine: the first N GPUs if TensorFlow sees GPUs (default: "
        "all), else the CPU split into N logical devices",
    )
    train.set_defaults(run=_run_train)

    compare = commands.add_parser(
        "compare",
        help="train the NumPy reference, the custom ops and Keras built-ins side by side",
        description="From identical initial weights and batch order, train the NumPy "
        "reference, the custom ops and Keras built-ins; print how far apart their gradients, "
        "weights, loss curves and accuracies are, and write the figures.",
    )
    _add_training_options(compare, default_dtype="float64")
    compare.add_argument(
        "--gradient-steps",
        type=_positive_int,
        default=5,
        help="compare gradients over this many first steps (default: %(default)s)",
    )
    compare.add_argument("--out", default="out/compare", help="figures folder")
    compare.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    compare.set_defaults(run=_run_compare)

    gradcheck = commands.add_parser(
        "gradcheck",
        help="check every custom gradient against autodiff, finite differences and NumPy",
        description="For each custom op (and the whole chain) and each dtype, the largest "
        "relative error of the custom gradient against autodiff of the built-in formula, "
        "finite differences and the NumPy reference's backward. Exits 1 if any is over its "
        "tolerance.",
    )
    gradcheck.add_argument("--seed", type=int, default=0, help="draws the inputs")
    gradcheck.add_argument("--batch", type=_positive_int, default=8)
    gradcheck.add_argument("--features", type=_positive_int, default=12)
    gradcheck.add_argument("--classes", type=_positive_int, default=10)
    gradcheck.add_argument(
        "--dtype", choices=("float32", "float64"), action="append", help="default: both"
    )
    gradcheck.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    gradcheck.set_defaults(run=_run_gradcheck)

    bench = commands.add_parser(
        "bench",
        help="time the NumPy reference, the custom ops, built-ins and model.fit on MNIST",
        description="In one process, on MNIST: median seconds per epoch and samples per second "
        "of the NumPy reference (vectorized and per-sample loop), train_sgd with the custom "
        "ops (jacobian and vjp) and with built-in ops, and model.fit; each row's ratio to "
        "model.fit, peak memory, bytes per epoch against the measured memory bandwidth, an "
        "op-level softmax micro-benchmark, the accuracy check and the start-up of "
        "`tfsoftmax train`, with the issue's targets.",
    )
    bench.add_argument(
        "--epochs",
        type=_positive_int,
        default=5,
        help="timed epochs per row, after one warm-up epoch (default: %(default)s)",
    )
    bench.add_argument("--batch-size", type=_positive_int, default=NOTEBOOK["batch_size"])
    bench.add_argument("--learning-rate", type=_positive_float, default=NOTEBOOK["learning_rate"])
    bench.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    bench.add_argument("--seed", type=int, default=NOTEBOOK["seed"])
    bench.add_argument(
        "--limit", type=_positive_int, metavar="N", help="use the first N training samples"
    )
    bench.add_argument(
        "--loop-epochs",
        type=_positive_int,
        default=1,
        help="epochs of the per-sample NumPy loop (default: %(default)s)",
    )
    bench.add_argument(
        "--rows", nargs="+", metavar="ROW", help="run only these rows (default: all six)"
    )
    bench.add_argument(
        "--accuracy-epochs",
        type=_non_negative_int,
        default=NOTEBOOK["epochs"],
        help="epochs of the accuracy check, 0 skips it (default: %(default)s)",
    )
    bench.add_argument(
        "--cli-epochs",
        type=_non_negative_int,
        default=NOTEBOOK["epochs"],
        help="time `tfsoftmax train` with this many epochs in a fresh process, 0 skips it "
        "(default: %(default)s)",
    )
    bench.add_argument("--no-micro", action="store_true", help="skip the op micro-benchmark")
    bench.add_argument("--no-step", action="store_true", help="skip the step-ratio measurement")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.set_defaults(run=_run_bench)

    info = commands.add_parser(
        "info",
        help="versions, the devices TensorFlow sees, and whether the custom ops run on them",
        description="Print the versions of tfsoftmax, TensorFlow, Keras and Python, the "
        "physical and logical devices TensorFlow sees, and run a tiny forward and backward "
        "pass of every custom op on every device. Exits 1 if an op fails on a device.",
    )
    info.add_argument(
        "--devices",
        type=_positive_int,
        metavar="N",
        help="split the CPU into N logical devices first (as train --devices N does)",
    )
    info.set_defaults(run=_run_info)
    return parser


def _load_data(args, dtype):
    from tfsoftmax.datasets import load_mnist, preprocess

    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype=dtype)
    if args.limit is not None:
        data = dataclasses.replace(
            data,
            x_train=data.x_train[: args.limit],
            y_train=data.y_train[: args.limit],
            labels_train=data.labels_train[: args.limit],
        )
    return data


def _run_train(args):
    import numpy as np

    from tfsoftmax import models, plots, reference  # noqa: F401 - models: TensorFlow, Keras

    startup = _seconds_since_process_start()  # Python, imports (TensorFlow, Keras)
    imported = time.perf_counter()
    if args.impl == "numpy" and args.checkpoint_dir is not None:
        raise UsageError("--checkpoint-dir needs --impl custom or keras (train_sgd)")
    _check_preset(args)
    started = time.perf_counter()
    strategy = _strategy_for(args)  # before TensorFlow initialises its devices
    data = _load_data(args, args.dtype)
    loaded = time.perf_counter()
    initial = reference.Dense(
        data.x_train.shape[1],
        data.y_train.shape[1],
        rng=np.random.default_rng(args.seed),
        dtype=args.dtype,
    ).weights
    settings = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    from tfsoftmax.history import History
    from tfsoftmax.models import get_notebook_weights, notebook_model, set_notebook_weights

    if args.impl == "numpy":
        dense, losses = reference.train(
            data.x_train.T,
            data.y_train.T,
            initial_weights=initial,
            verbose=1 if args.verbose else 0,
            **settings,
        )
        history = History({**settings, "impl": "numpy", "dtype": args.dtype})
        for epoch, loss in enumerate(losses):
            history.record(epoch, {"loss": loss}, float("nan"))
        weights = dense.weights
        model, _ = notebook_model("custom", weights, dtype=args.dtype)
        set_notebook_weights(model, weights)
    else:
        from tfsoftmax.distribute import strategy_scope
        from tfsoftmax.training import train_sgd

        with strategy_scope(strategy):
            model, loss = notebook_model(
                args.impl, initial, dtype=args.dtype, softmax_method=args.softmax_method
            )
        if args.preset is not None:
            from tfsoftmax.presets import train_preset

            history = train_preset(
                model,
                data.x_train,
                data.y_train,
                args.preset,
                seed=args.seed,
                loss=loss,
                verbose=min(args.verbose, 1),
                validation_data=(data.x_test, data.y_test),
                strategy=strategy,
            )
        else:
            history = train_sgd(
                model,
                data.x_train,
                data.y_train,
                loss=loss,
                verbose=args.verbose,
                validation_data=(data.x_test, data.y_test),
                strategy=strategy,
                checkpoint_dir=args.checkpoint_dir,
                **settings,
            )
        history.params["impl"] = args.impl
        if strategy is not None:
            history.params["strategy"] = args.strategy or "mirrored"
            history.params["replicas"] = strategy.num_replicas_in_sync
        weights = get_notebook_weights(model)
    trained = time.perf_counter()
    from tfsoftmax.distribute import is_chief

    if not is_chief(strategy):
        print(f"Worker done in {trained - started:.2f}s; the chief (worker 0) writes the outputs")
        return 0

    if strategy is None:
        probabilities = model.predict(data.x_test, batch_size=10_000, verbose=0)
    else:  # a plain call: Keras' predict would distribute (and on many workers, wait for all)
        probabilities = model(data.x_test, training=False).numpy()
    predictions = np.argmax(probabilities, axis=1)
    accuracy = float(np.mean(predictions == data.labels_test))
    os.makedirs(args.out, exist_ok=True)
    written = [
        history.to_json(os.path.join(args.out, "history.json")),
        history.to_csv(os.path.join(args.out, "history.csv")),
    ]
    np.save(os.path.join(args.out, "weights.npy"), weights)
    model_path = os.path.join(args.out, "model.keras")
    model.save(model_path)
    written += [os.path.join(args.out, "weights.npy"), model_path]
    written += plots.write_training_figures(
        args.out,
        losses=history.loss,
        weights=weights,
        images=data.x_test,
        y_true=data.labels_test,
        y_pred=predictions,
    )
    print(f"Test accuracy: {accuracy:.4f}")
    finished = time.perf_counter()
    print(
        "Time: "
        + (f"start-up {startup:.2f}s (Python, TensorFlow, Keras), " if startup else "")
        + f"data {loaded - started:.2f}s, training {trained - loaded:.2f}s"
        + f"{_epoch_times(history.epoch_seconds)}, writing {finished - trained:.2f}s, "
        + f"total {finished - imported + (startup or 0):.2f}s"
        + (" since the process started" if startup else "")
    )
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0


def _check_preset(args):
    """``--preset`` sets epochs, batch size and learning rate, for the custom ops only."""
    if args.preset is None:
        return
    if args.impl != "custom":
        raise UsageError(f"--preset {args.preset} trains the custom ops: drop --impl {args.impl}")
    if getattr(args, "checkpoint_dir", None) is not None:
        raise UsageError(f"--preset {args.preset} runs several stages: drop --checkpoint-dir")
    for option in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, option) != NOTEBOOK[option]:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"--preset {args.preset} sets {flag} itself: drop {flag}")


def _seconds_since_process_start():
    """Wall seconds since this process started (Linux ``/proc``), else None."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as uptime:
            now = float(uptime.read().split()[0])
        return now - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def _epoch_times(seconds):
    """`` (first epoch Xs with tracing and compilation, then Ys/epoch)`` when timed."""
    seconds = [s for s in seconds if math.isfinite(s)]
    if len(seconds) < 2:
        return ""
    rest = sorted(seconds[1:])
    return (
        f" (first epoch {seconds[0]:.2f}s with tracing and compilation, "
        f"then median {rest[len(rest) // 2]:.3f}s/epoch)"
    )


def _strategy_for(args):
    """The ``tf.distribute`` strategy ``--strategy``/``--devices`` ask for, or None.

    Made first thing, before TensorFlow initialises its devices (a logical CPU
    split is impossible afterwards).
    """
    kind = args.strategy or ("mirrored" if args.devices is not None else None)
    if kind is None:
        return None
    if args.impl == "numpy":
        raise UsageError("--strategy/--devices need --impl custom or keras (train_sgd)")
    from tfsoftmax.distribute import make_strategy

    return make_strategy(kind, args.devices)


def _run_info(args):
    import platform

    from tfsoftmax._tf import keras, tf
    from tfsoftmax.distribute import check_ops_on_devices, configure_cpu_devices

    if args.devices is not None and not tf.config.list_physical_devices("GPU"):
        configure_cpu_devices(args.devices)
    build = tf.sysconfig.get_build_info()
    cuda = (
        f"CUDA {build.get('cuda_version', '?')}, cuDNN {build.get('cudnn_version', '?')}"
        if build.get("is_cuda_build")
        else "CPU-only build"
    )
    print(f"tfsoftmax {__version__}")
    print(f"TensorFlow {tf.__version__} ({cuda})")
    print(f"Keras {keras.__version__} (backend {keras.backend.backend()})")
    print(f"Python {platform.python_version()} on {platform.platform()}")
    print("Physical devices:")
    for device in tf.config.list_physical_devices():
        print(f"  {device.device_type:<4} {device.name}")
    print("Logical devices:")
    for device in tf.config.list_logical_devices():
        print(f"  {device.device_type:<4} {device.name}")
    results = check_ops_on_devices(dtype="float32")
    print("Custom ops, forward + backward (float32), checked against TensorFlow's own:")
    for device, op, ok, detail in results:
        print(f"  {device:<40} {op:<28} {'ok' if ok else 'FAILED':<6} {detail}")
    return 0 if all(ok for _, _, ok, _ in results) else 1


def _run_compare(args):
    from tfsoftmax import plots
    from tfsoftmax.compare import compare

    started = time.perf_counter()
    data = _load_data(args, args.dtype)
    result = compare(
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        dtype=args.dtype,
        softmax_method=args.softmax_method,
        gradient_steps=args.gradient_steps,
    )
    print(result.table())
    written = [
        plots.plot_loss_curves(
            {
                "numpy reference": result.losses["numpy"],
                "custom ops": result.losses["custom"],
                "keras built-ins": result.losses["keras"],
            },
            os.path.join(args.out, "loss_curves.png"),
        )
    ]
    written += plots.write_training_figures(
        args.out,
        losses=result.losses["custom"],
        weights=result.final_weights["custom"],
        images=data.x_test,
        y_true=data.labels_test,
        y_pred=result.test_predictions["custom"],
    )
    if args.json:
        written.append(result.to_json(args.json))
    print(f"Wall time: {time.perf_counter() - started:.1f}s")
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0 if result.agree else 1


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _run_bench(args):
    from tfsoftmax import bench
    from tfsoftmax.datasets import load_mnist, preprocess

    rows = tuple(args.rows) if args.rows else bench.ROWS
    unknown = [row for row in rows if row not in bench.ROWS]
    if unknown:
        raise UsageError(f"unknown rows {', '.join(unknown)}; choose from {', '.join(bench.ROWS)}")
    (x_train, y_train), (x_test, y_test) = load_mnist()
    data = preprocess(x_train, y_train, x_test, y_test, layout="batch-major", dtype=args.dtype)
    result = bench.run_bench(
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        dtype=args.dtype,
        seed=args.seed,
        rows=rows,
        loop_epochs=args.loop_epochs,
        micro=not args.no_micro,
        step=not args.no_step,
        accuracy_epochs=args.accuracy_epochs,
        cli_epochs=args.cli_epochs,
        limit=args.limit,
    )
    print(result.table())
    if args.json:
        print(f"Wrote {result.to_json(args.json)}")
    return 0


def _run_gradcheck(args):
    from tfsoftmax import gradcheck

    settings = dict(
        seed=args.seed,
        batch=args.batch,
        features=args.features,
        classes=args.classes,
        dtypes=tuple(args.dtype or gradcheck.DTYPES),
    )
    rows = gradcheck.run_gradcheck(**settings)
    print(gradcheck.format_table(rows))
    if args.json:
        print(f"Wrote {gradcheck.to_json(rows, args.json, settings)}")
    return 0 if all(row.ok for row in rows) else 1


def main(argv=None):
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, UsageError) as error:
        print(f"tfsoftmax {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfsoftmax {args.command}: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, FloatingPointError, OSError) as error:
        name = type(error).__name__
        print(f"tfsoftmax {args.command}: {name}: {_one_line(error)}", file=sys.stderr)
        return 1
