"""The goals against the best alternatives, each judged only when the run measured it.

Ratios are on median epoch times (same-round medians for rows in the rounds)::

    custom-jacobian / jax-scan                          <= 1.0   (float32; JAX's idiomatic epoch)
    1 / (custom-jacobian / keras-fit)                   >= 6     (over model.fit as shipped)
    1 / (custom-jacobian / keras-fit-best)              >= 3     (over model.fit at its best)
    custom-uint8 / custom-jacobian                      <= 1.0   (uint8 features cost no time)
    |accuracy(custom-uint8) - accuracy(custom-jacobian)| <= 1e-4
    |accuracy(jax-scan) - accuracy(custom-jacobian)|     <= 0.002
    1-epoch train_sgd call / steady epoch               <= 1.3
    peak RSS while training - RSS after the data        <= 200 MB   (tfsoftmax train)
    tfsoftmax train, warm cache / (import + n epochs)   <= 1.5
"""

__all__ = ["GOALS", "extra_goals", "judge"]

#: name -> limit, for the goals of this module.
GOALS = {
    "jax": 1.0,
    "fit_speedup": 6.0,
    "best_fit_speedup": 3.0,
    "uint8": 1.0,
    "uint8_accuracy": 1e-4,
    "jax_accuracy": 0.002,
    "call": 1.3,
    "rss_mb": 200.0,
    "warm_cli": 1.5,
}


def judge(name, value, limit, op="<="):
    """One goal as a dict: met when ``value <= limit`` (``op="<="``) or ``>=`` (``">="``);
    ``miss_factor`` is how far it missed, ``value / limit`` or ``limit / value``."""
    met = value <= limit if op == "<=" else value >= limit
    if met:
        miss = None
    elif op == "<=":
        miss = value / limit
    else:
        miss = limit / value if value > 0 else float("inf")
    return {
        "name": name,
        "value": float(value),
        "limit": float(limit),
        "op": op,
        "met": bool(met),
        "miss_factor": None if miss is None else float(miss),
    }


def extra_goals(result):
    """The goals of this module that ``result`` measured."""
    goals = _ratio_goals(result) + _accuracy_goals(result)
    call = result.one_epoch_call
    if call is not None:
        goals.append(judge("train_sgd 1-epoch call <= 1.3 x a steady epoch", call["ratio"], 1.3))
    goals += _cli_goals(result)
    return goals


def _ratio_goals(result):
    goals = []
    jax_ratio = result.ratio("custom-jacobian", "jax-scan")
    if jax_ratio is not None and result.settings.get("dtype") == "float32":
        name = "custom-jacobian float32 steady epoch <= 1.0 x the jax-scan epoch"
        goals.append(judge(name, jax_ratio, GOALS["jax"]))
    for baseline, key in (("keras-fit", "fit_speedup"), ("keras-fit-best", "best_fit_speedup")):
        ratio = result.ratio("custom-jacobian", baseline)
        if ratio is not None:
            speedup = 1 / ratio  # the inverse of the "<= x keras-fit" ratio, so the two agree
            name = f"custom-jacobian speed-up over {baseline} >= {GOALS[key]:g}"
            goals.append(judge(name, speedup, GOALS[key], ">="))
    uint8 = result.ratio("custom-uint8", "custom-jacobian")
    if uint8 is not None:
        name = "custom-uint8 epoch <= 1.0 x the custom-jacobian epoch"
        goals.append(judge(name, uint8, GOALS["uint8"]))
    return goals


def _accuracy_goals(result):
    accuracy = result.accuracy or {}
    others = accuracy.get("alternatives") or {}
    goals = []
    for row, key in (("custom-uint8", "uint8_accuracy"), ("jax-scan", "jax_accuracy")):
        if row in others and "custom" in accuracy:
            name = (
                f"|test accuracy {row} - custom-jacobian| after {accuracy['epochs']} "
                f"epochs <= {GOALS[key]:g}"
            )
            goals.append(judge(name, abs(others[row] - accuracy["custom"]), GOALS[key]))
    return goals


def _cli_goals(result):
    cli, goals = result.cli, []
    if cli is None:
        return goals
    memory = cli.get("memory") or {}
    if memory.get("rss_after_data_bytes"):
        rise = (memory["peak_rss_training_bytes"] - memory["rss_after_data_bytes"]) / 2**20
        name = "tfsoftmax train: peak RSS while training <= RSS after the data + 200 MB"
        goals.append(judge(name, rise, GOALS["rss_mb"]))
    row = result.rows.get("custom-jacobian")
    if cli.get("import_seconds") and row is not None:
        n = cli["epochs"]
        baseline = cli["import_seconds"] + n * row.median_seconds
        name = (
            f"tfsoftmax train ({n} epochs, warm compilation cache) <= 1.5 x (importing "
            f"TensorFlow and Keras + {n} epochs of custom-jacobian)"
        )
        goals.append(judge(name, cli["wall_seconds"] / baseline, GOALS["warm_cli"]))
    return goals
