"""One data-parallel training worker (``python -m cpuai.train.worker JOBDIR [--resume]``).

Started by ``cpuai.train.jobs`` with RANK, WORLD_SIZE, MASTER_ADDR/PORT and the CPUs it owns
(CPUAI_WORKER_CPUS, from ``cpuai.launch.plan``); it pins itself, joins the gloo group and runs the
shared loop. Exit code 0 when done, 128+SIGTERM after checkpointing on a stop request.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from datetime import timedelta


def main(argv: list[str]) -> int:
    import torch
    import torch.distributed as dist

    from cpuai.hardware import core_budget
    from cpuai.train.jobdir import JobDir
    from cpuai.train.jobs import build_recipe, job_log
    from cpuai.train.loop import Interrupted, StopRequest, train

    job = JobDir.open(argv[0])
    resume = "--resume" in argv[1:]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cpus = os.environ.get("CPUAI_WORKER_CPUS")
    if cpus:
        os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
    spec = job.spec()
    torch.set_num_threads(spec.threads or (len(cpus.split(",")) if cpus else core_budget()))
    torch.set_num_interop_threads(1)
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    stop = StopRequest().install()
    signal.signal(signal.SIGINT, signal.SIG_IGN) if rank != 0 else None
    init = f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    dist.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(minutes=10)
    )
    try:
        recipe = build_recipe(spec)
        if rank == 0:
            with job_log(job):
                train(spec, recipe, job, stop=stop, rank=rank, world=world, resume=resume)
        else:
            logging.getLogger("cpuai.train").setLevel(logging.WARNING)
            train(spec, recipe, job, stop=stop, rank=rank, world=world, resume=resume)
    except Interrupted:
        return 128 + signal.SIGTERM  # one code for "stopped on request", whatever the signal
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
