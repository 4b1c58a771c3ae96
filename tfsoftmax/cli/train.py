"""``tfsoftmax train``: train the notebook's classifier on MNIST and write what it learned."""

import os

from tfsoftmax.cli import compile_cache
from tfsoftmax.cli.arguments import (
    UsageError,
    add_compile_cache_option,
    add_training_options,
    positive_int,
)
from tfsoftmax.cli.data import load_data
from tfsoftmax.cli.timing import (
    PhaseClock,
    compile_estimate,
    describe_epoch_times,
    describe_phases,
)
from tfsoftmax.constants import NOTEBOOK, STRATEGIES
from tfsoftmax.rss import PeakMemory, resident_bytes

__all__ = [
    "OUTPUT_BYTES",
    "add_parser",
    "check_output_paths",
    "check_preset",
    "run",
    "strategy_for",
]


def add_parser(commands):
    parser = commands.add_parser(
        "train",
        help="train the notebook's classifier on MNIST and write history, model and figures",
        description="Train the notebook's softmax classifier on MNIST with mini-batch SGD and "
        "write history.json, history.csv, model.keras, weights.npy and the figures to --out.",
    )
    parser.add_argument(
        "--impl",
        choices=("custom", "numpy", "keras"),
        default="custom",
        help="custom: the custom-gradient ops with train_sgd; numpy: the NumPy reference; "
        "keras: Keras built-ins with train_sgd (default: %(default)s)",
    )
    add_training_options(parser, default_dtype="float32")
    parser.add_argument(
        "--uint8",
        action="store_true",
        help="keep the pixels as uint8 (a quarter of the memory) and let the model scale "
        "them (its first layer, MinMaxRescaling: the same numbers as the float "
        "preprocessing, bit for bit); custom and keras only",
    )
    parser.add_argument("--out", default="out/train", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--preset",
        choices=("best",),
        help="best: the most a linear softmax classifier gets on MNIST (~92.6%% test "
        "accuracy, 60 epochs, batch 100, learning rate 0.5 -> 0.01 in steps; a few seconds); "
        "sets epochs, batch size and learning rate (custom ops, train_sgd)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="save a checkpoint after every epoch to DIR; run the same command again to "
        "resume after the last completed epoch (custom and keras only)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=2,
        help="0 silent, 1 progress bar, 2 one line per epoch (default: %(default)s)",
    )
    add_compile_cache_option(parser)
    scaling = parser.add_argument_group("scaling out (tf.distribute; see README 'Scaling out')")
    scaling.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="mirrored: the devices of this machine; multiworker: several processes or "
        "machines, described by the TF_CONFIG environment variable (default: one device, "
        "or mirrored when --devices is given)",
    )
    scaling.add_argument(
        "--devices",
        type=positive_int,
        metavar="N",
        help="replicas on this machine: the first N GPUs if TensorFlow sees GPUs (default: "
        "all), else the CPU split into N logical devices",
    )
    parser.set_defaults(run=run)


def run(args):
    if args.impl == "numpy" and args.checkpoint_dir is not None:  # before TensorFlow loads
        raise UsageError("--checkpoint-dir needs --impl custom or keras (train_sgd)")
    if args.impl == "numpy" and args.uint8:
        raise UsageError("--uint8 needs --impl custom or keras (a model that scales its input)")
    check_preset(args)
    check_output_paths(args)  # before any work: one line naming the path and the reason
    return compile_cache.run_with_cache(not args.no_compile_cache, lambda cache: _run(args, cache))


def _run(args, cache):
    """Import, load, train, write; the phases timed by a :class:`PhaseClock`."""
    import numpy as np

    # The heavy imports (TensorFlow, Keras, Matplotlib) first: they count as start-up.
    if args.verbose:
        print("Importing TensorFlow and Keras ...", flush=True)
    from tfsoftmax import models, plots, reference  # noqa: F401

    clock = PhaseClock()
    strategy = strategy_for(args)  # before TensorFlow initialises its devices
    if args.verbose:
        pixels = "uint8 pixels, " if args.uint8 else ""
        print(f"Loading MNIST ({pixels}{args.dtype}) ...", flush=True)
    data = load_data(args.dtype, args.limit, uint8=args.uint8)
    memory = {"rss_after_data_bytes": resident_bytes()}
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
    clock.close("data")
    with PeakMemory() as peak:
        if args.impl == "numpy":
            model, history, weights = _train_numpy_reference(args, data, initial, settings)
        else:
            model, history, weights = _train_sgd(args, data, initial, settings, strategy)
    training = clock.close("training")
    memory["peak_rss_training_bytes"] = peak.peak
    compiled = None if args.impl == "numpy" else compile_estimate(history.epoch_seconds)
    clock.split_compile("training", compiled)
    from tfsoftmax.distribute import is_chief

    if not is_chief(strategy):
        print(f"Worker done in {training:.2f}s; the chief (worker 0) writes the outputs")
        return 0
    history.params["memory"] = memory
    written, accuracy = _predict_and_write(
        args, model, data, history, weights, strategy, clock, cache
    )
    print(f"Test accuracy: {accuracy:.4f}")
    _report(clock.to_dict(), history, memory, cache)
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0


def _predict_and_write(args, model, data, history, weights, strategy, clock, cache):
    """Test predictions, then the outputs; ``(paths written, test accuracy)``.

    ``history.json`` is written last, with the phases so far (its ``write``
    phase leaves out the history files' own milliseconds) and the cache's
    figures, its new entries published just before.
    """
    import numpy as np

    if strategy is None:
        probabilities = model.predict(data.x_test, batch_size=10_000, verbose=0)
    else:  # a plain call: Keras' predict would distribute (and on many workers, wait for all)
        probabilities = model(data.x_test, training=False).numpy()
    predictions = np.argmax(probabilities, axis=1)
    accuracy = float(np.mean(predictions == data.labels_test))

    def before_history():
        cache.publish()
        clock.close("write")
        history.params["phase_seconds"] = clock.to_dict()
        history.params["compile_cache"] = cache.to_dict()

    written = _write_outputs(args.out, history, weights, model, data, predictions, before_history)
    clock.close("write")
    return written, accuracy


def _report(phases, history, memory, cache):
    """The ``Time:`` line (phases, epochs) and the ``Memory:`` and cache lines."""
    print(
        f"Time: {describe_phases(phases)}{describe_epoch_times(history.epoch_seconds)}"
        " (import: since the command started, Python, TensorFlow and Keras included; "
        "compile: first epoch - median epoch)"
    )
    after, peak = memory["rss_after_data_bytes"], memory["peak_rss_training_bytes"]
    if after is not None:
        print(
            f"Memory: {after / 2**20:,.0f} MB resident after loading the data, peak while "
            f"training {peak / 2**20:,.0f} MB (+{(peak - after) / 2**20:,.0f} MB)"
        )
    print(f"XLA compilation cache: {cache.describe()}")


#: Room the outputs need in ``--out`` (model, weights, figures, history), checked up front.
OUTPUT_BYTES = 4 * 2**20


def check_output_paths(args):
    """``--out`` and ``--checkpoint-dir`` can be created and written, before any
    work: else :class:`tfsoftmax.atomic.OutputError` (exit 1), or ``ValueError``
    for an empty path (exit 2). Nothing is left behind by the check."""
    from tfsoftmax.atomic import check_writable_directory

    check_writable_directory(args.out, "--out", size=OUTPUT_BYTES)
    if args.checkpoint_dir is not None:
        if not args.checkpoint_dir:
            raise UsageError("--checkpoint-dir is empty; pass a folder")
        if not os.path.isdir(args.checkpoint_dir) and os.path.exists(args.checkpoint_dir):
            return  # train_sgd refuses it with its own message (a ValueError)
        check_writable_directory(args.checkpoint_dir, "--checkpoint-dir")


def check_preset(args):
    """``--preset`` sets epochs, batch size and learning rate, for the custom ops only."""
    if args.preset is None:
        return
    if args.impl != "custom":
        raise UsageError(f"--preset {args.preset} trains the custom ops: drop --impl {args.impl}")
    if args.checkpoint_dir is not None:
        raise UsageError(f"--preset {args.preset} runs several stages: drop --checkpoint-dir")
    for option in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, option) != NOTEBOOK[option]:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"--preset {args.preset} sets {flag} itself: drop {flag}")


def strategy_for(args):
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

    strategy = make_strategy(kind, args.devices)
    print(
        f"Distributed: {type(strategy).__name__}, "
        f"{strategy.num_replicas_in_sync} replica(s) in sync",
        flush=True,
    )
    return strategy


def _train_numpy_reference(args, data, initial, settings):
    """``--impl numpy``: the NumPy reference, its weights then put in the custom-ops model."""
    from tfsoftmax import reference
    from tfsoftmax.blas import reference_blas_threads
    from tfsoftmax.history import History
    from tfsoftmax.models import notebook_model, set_notebook_weights

    with reference_blas_threads():  # its fastest setting on 2 cores, see tfsoftmax.blas
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
    return model, history, weights


def _train_sgd(args, data, initial, settings, strategy):
    """``--impl custom`` or ``keras``: train_sgd (or the preset's stages of it)."""
    from tfsoftmax.distribute import strategy_scope
    from tfsoftmax.models import get_notebook_weights, notebook_model
    from tfsoftmax.training import train_sgd

    with strategy_scope(strategy):
        model, loss = notebook_model(
            args.impl,
            initial,
            dtype=args.dtype,
            softmax_method=args.softmax_method,
            input_dtype="uint8" if args.uint8 else None,
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
    history.params["uint8"] = bool(args.uint8)
    if strategy is not None:
        history.params["strategy"] = args.strategy or "mirrored"
        history.params["replicas"] = strategy.num_replicas_in_sync
    return model, history, get_notebook_weights(model)


def _write_outputs(out, history, weights, model, data, predictions, before_history=None):
    """History, weights, model and figures in ``out``, each written atomically
    (:func:`tfsoftmax.atomic.replacing`: a full disk leaves the previous file or
    none, never a truncated one); returns the paths written. Non-finite weights
    are never written; a failed write is one :class:`tfsoftmax.atomic.OutputError`.
    ``before_history()`` runs just before the history files, which come last."""
    import numpy as np

    from tfsoftmax import plots
    from tfsoftmax._tf import tf
    from tfsoftmax.atomic import output_errors, replacing
    from tfsoftmax.divergence import TrainingDivergedError

    if not np.all(np.isfinite(weights)):
        raise TrainingDivergedError("the trained weights hold NaN or inf; nothing was written")
    with output_errors(f"--out {out!r}", also=(tf.errors.OpError,)):
        written = _write_files(out, history, weights, model, data, predictions, plots, replacing)
        if before_history is not None:
            before_history()
        return [
            history.to_json(os.path.join(out, "history.json")),
            history.to_csv(os.path.join(out, "history.csv")),
            *written,
        ]


def _write_files(out, history, weights, model, data, predictions, plots, replacing):
    """The files of :func:`_write_outputs` but the history's, in ``out``."""
    import numpy as np

    os.makedirs(out, exist_ok=True)
    weights_path = os.path.join(out, "weights.npy")
    with replacing(weights_path, suffix=".npy") as temporary, open(temporary, "wb") as stream:
        np.save(stream, weights)
    model_path = os.path.join(out, "model.keras")
    with replacing(model_path, suffix=".keras") as temporary:
        model.save(temporary)
    written = [weights_path, model_path]
    written += plots.write_training_figures(
        out,
        losses=history.loss,
        val_losses=history.history.get("val_loss"),
        weights=weights,
        images=data.x_test,
        y_true=data.labels_test,
        y_pred=predictions,
    )
    return written
