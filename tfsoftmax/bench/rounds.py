"""The order of the rows' calls: one warm-up each, then timed epochs in rounds.

* every row first runs one **warm-up epoch** (:meth:`RowRunner.warm_up
  <tfsoftmax.bench.rows.RowRunner.warm_up>`);
* then ``epochs`` (5 by default; the issue asks for >= 3) **timed epochs in
  rounds**: round ``r`` runs one epoch of every row, the row order rotating
  between rounds, so a burst of load from other processes on the shared CPU
  hits every row alike. Each row's figure is the **median** of its epochs; a
  ratio between two rows (``ratio_to_fit``, the targets) is the median of
  their same-round ratios, measured back to back
  (:meth:`BenchResult.ratio <tfsoftmax.bench.results.BenchResult.ratio>`);
* ``numpy-loop`` runs ``loop_epochs`` (default 1) epoch(s), after the rounds,
  without a warm-up (NumPy compiles nothing).
"""

LOOP_ROW = "numpy-loop"


def time_rows(runners, epochs, loop_epochs, seed):
    """Warm up every runner, time ``epochs`` interleaved rounds, then ``numpy-loop``.

    Round ``r`` (and ``numpy-loop``'s epoch ``r``) shuffles with ``seed + 1 + r``;
    the results land in each runner's ``row``.
    """
    interleaved = [r for r in runners if r.name != LOOP_ROW]
    for runner in interleaved:
        runner.warm_up(seed)
    for round_number in range(epochs):
        shift = round_number % max(1, len(interleaved))
        for runner in interleaved[shift:] + interleaved[:shift]:
            runner.timed(seed + 1 + round_number)
    for runner in runners:
        if runner.name == LOOP_ROW:
            for epoch in range(loop_epochs):
                runner.timed(seed + 1 + epoch)
            runner.row.notes = "no warm-up (NumPy compiles nothing), after the rounds"
            runner.row.in_rounds = False
