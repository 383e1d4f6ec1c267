"""`triage bench`: the end-to-end benchmark, against a real broker.

For K classes of a labelled CSV it trains (or loads) the classifiers, runs the pipeline
(co-located or one process per classifier) against the cluster of the settings it is given (the
CLI starts a local broker when none is configured), publishes M held-out texts as fast as
possible or at a fixed rate, and measures end-to-end throughput (first publish to last result),
latency (text timestamp to the result reaching a `read_committed` consumer), CPU seconds of the
pipeline processes per 1,000 texts, and, in the same run, the in-process batch scoring rate of
the same models (the limit). It also checks correctness: every text exactly one result, labels
equal to the offline decision of the same models, and reports the accuracy of those labels next
to that of scikit-learn's default `predict_proba` path. Each run first publishes warm-up texts
at the same rate and waits for their results, so what is measured is the running pipeline, not
consumer groups joining. Several repetitions on fresh topics; medians are reported. With heads
trained on an encoder's features (`--encoder`), the pipeline includes `triage encoder`, whose
own in-process rate with the same threads and batches is the limit reported, and a second
series of runs at half that rate gives the latency of a pipeline not at its limit. The parts:
`offline` (the data, the models and their offline decisions), `rates` (the limits measured in
process, no Kafka), `running` (one run of the pipeline on fresh topics), `reporting` (medians of
the runs, and the summary printed), and `suite` (`bench` itself, which ties them).
"""

from triage.tools.bench.reporting import format_summary
from triage.tools.bench.suite import bench

__all__ = ["bench", "format_summary"]
