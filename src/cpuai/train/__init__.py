"""Training jobs: a spec, a job directory (log, metrics, atomic checkpoints, package) and the loop.

>>> from cpuai.train import TrainSpec, run_job
>>> spec = TrainSpec(recipe="image-classification", data="digits/", out="jobs/digits")
>>> package = run_job(spec)          # or resume_job("jobs/digits") after a crash
"""

from cpuai.train.jobs import resume_job, run_job
from cpuai.train.spec import TrainSpec

__all__ = ["TrainSpec", "resume_job", "run_job"]
