"""``tfsoftmax info``: versions, devices, and whether the custom ops run on each device."""

from tfsoftmax import __version__
from tfsoftmax.cli.arguments import positive_int

__all__ = ["add_parser", "run"]


def add_parser(commands):
    parser = commands.add_parser(
        "info",
        help="versions, the devices TensorFlow sees, and whether the custom ops run on them",
        description="Print the versions of tfsoftmax, TensorFlow, Keras and Python, the "
        "physical and logical devices TensorFlow sees, and run a tiny forward and backward "
        "pass of every custom op on every device. Exits 1 if an op fails on a device.",
    )
    parser.add_argument(
        "--devices",
        type=positive_int,
        metavar="N",
        help="split the CPU into N logical devices first (as train --devices N does)",
    )
    parser.set_defaults(run=run)


def run(args):
    """Exit code 1 when a custom op fails on a device."""
    import platform

    from tfsoftmax._tf import keras, tf
    from tfsoftmax.devices import check_ops_on_devices
    from tfsoftmax.distribute import configure_cpu_devices

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
