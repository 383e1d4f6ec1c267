"""`triage bench`: the end-to-end benchmark, against a real broker.

For K classes of a labelled CSV it trains (or loads) the classifiers, runs the stack as
`triage up` starts it, monitor included (co-located or one process per classifier), against the
cluster of the settings it is given (the CLI starts a local broker when none is configured),
publishes M held-out texts as fast as possible or at a fixed rate, and measures end-to-end
throughput (first publish to last result), latency (text timestamp to the result reaching a
`read_committed` consumer), the CPU milliseconds per text of every process of the stack by role
(the broker's when its pids are known; the bench's own clients reported apart), what the stack
burns at rest with no texts, and, in the same run, the in-process batch scoring rate of the same
models (the limit, and this machine's speed, printed beside every block of figures). It also
checks correctness: every text exactly one result, labels equal to the offline decision of the
same models, and reports the accuracy of those labels next to that of scikit-learn's default
`predict_proba` path. Each run first warms up at the same rate, in rounds until the latency
settles (or an asked count of texts), so what is measured is the running pipeline, not consumer
groups joining or the broker's JIT compiling. Several repetitions on fresh topics; medians are
reported; a sweep runs the series at several rates and finds where the latency bends. With
heads trained on an encoder's features (`--encoder`), the pipeline includes `triage encoder`,
whose own in-process rate with the same threads and batches is the limit reported, and a second
series of runs at half that rate gives the latency of a pipeline not at its limit. The parts:
`offline` (the data, the models and their offline decisions), `rates` (the limits measured in
process, no Kafka), `warmup` (when a warm-up has settled), `costs` (CPU by role, per text and at
rest), `running` (one run of the pipeline on fresh topics), `sweep` (the rates' table and its
bend), `reporting` (medians of the runs, and the summary printed), and `suite` (`bench` itself,
which ties them).
"""

from triage.tools.bench.reporting import format_summary
from triage.tools.bench.suite import bench

__all__ = ["bench", "format_summary"]
