"""Benchmarks and tuning: measure like a benchmark tool, then pick the deployment that wins.

measure   sync latency, throughput with requests in flight, cold start (perf_counter, warm-up out)
perf      one configuration over several batch sizes
sweep     grid of threads × streams × batch, and core scaling 1..N
compare   packages × backends side by side with ratios
accuracy  the task metric on a data set, as ``cpuai evaluate`` computes it
tuner     successive-halving search written into the package's deploy section
report    the JSON / CSV record with the machine summary and exact settings; plots draws it
"""

from cpuai.bench.config import RunConfig, resolve
from cpuai.bench.measure import Budget

__all__ = ["Budget", "RunConfig", "resolve"]
