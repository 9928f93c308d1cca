"""Ray: the same `Task` on a pool of Ray actors, on this machine or across a cluster (extra `distributed`).

Each actor is one `TaskWorker`: it runs ``Task.setup`` once (a model loaded, a SoundFont read) and keeps
that state for every job it is given, as a process-pool worker does. The pool is sized by the cluster's
CPUs (one per actor), or by its GPUs when each actor asks for some. A worker process that dies (killed,
out of memory, its node lost) is restarted by Ray, which runs ``setup`` again and retries the job it was
doing once (Ray's actor restarts and task retries); a job whose retry dies too is reported as
``Outcome.lost``. Jobs travel to the actors and small results back through Ray's object store; files are
written by the workers themselves, so on a cluster the output folder must be one every node sees (NFS,
a shared volume).

Why not ``ray.util.ActorPool``: when an actor dies it raises from ``get_next`` without saying which job
was lost, and it stops there; this loop keeps going and reports the one job.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence

from cadenza.errors import MissingDependency
from cadenza.runners.base import J, Outcome, R, Task
from cadenza.runners.worker import SetupFailed, TaskWorker

LOST_ON_RAY = "its Ray worker died (crash, out of memory or a lost node) while doing this job, twice"


class RayRunner:
    """Runs jobs on Ray actors.

    ``address``: None starts a Ray instance on this machine for the length of each ``map`` (unless this
    process is already connected to one, which is then used and left running); ``"host:port"`` (or
    ``"auto"``) joins a running cluster (``ray start --head`` on one machine, ``ray start --address`` on
    the others). ``workers``: actors (default: the cluster's free CPUs / ``cpus_per_worker``, or its GPUs /
    ``gpus_per_worker`` when that is set). ``retries``: how often a job whose worker died is run again.
    ``in_flight``: jobs queued at each actor, so it never waits for the next one.
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None, cpus_per_worker: float = 1.0,
                 gpus_per_worker: float = 0.0, retries: int = 1, in_flight: int = 2) -> None:
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.retries = retries
        self.in_flight = max(1, in_flight)

    def map(self, task: Task[J, R], jobs: Sequence[J]) -> Iterator[Outcome[J, R]]:
        if not jobs:
            return
        ray = import_ray()
        connected_here = _connect(ray, self.address)
        try:
            yield from self._map(ray, task, jobs)
        finally:
            if connected_here:  # stops the instance started for this map; leaves a cluster running
                ray.shutdown()

    def pool_size(self, resources: dict, jobs: int) -> int:
        """Actors for ``jobs`` jobs given the cluster's free ``resources`` (``ray.available_resources()``)."""
        if self.workers is not None:
            size = self.workers
        elif self.gpus_per_worker > 0:
            size = int(resources.get("GPU", 0) // self.gpus_per_worker)
        else:
            size = int(resources.get("CPU", 1) // self.cpus_per_worker)
        return max(1, min(size, jobs))

    def _map(self, ray, task: Task, jobs: Sequence) -> Iterator[Outcome]:
        actor_class = ray.remote(TaskWorker).options(
            num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker,
            max_restarts=-1, max_task_retries=self.retries)  # a dead actor comes back set up; its job is retried
        actors = [actor_class.remote(task) for _ in range(self.pool_size(ray.available_resources(), len(jobs)))]
        queue = deque(range(len(jobs)))
        running: dict = {}  # ObjectRef -> (job index, actor)

        def give(actor) -> None:
            index = queue.popleft()
            running[actor.run.remote(jobs[index])] = (index, actor)

        try:
            for _ in range(self.in_flight):
                for actor in actors:
                    if queue:
                        give(actor)
            while running:
                refs = list(running)
                ready, waiting = ray.wait(refs, num_returns=1)
                if waiting:  # and every other job already done: one pass over the refs per batch, not per job
                    # (with thousands of actors, a pass per job would make this loop the limit)
                    ready += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
                for ref in ready:
                    index, actor = running.pop(ref)
                    yield self._outcome(ray, ref, jobs[index])
                    if queue:
                        give(actor)
        finally:  # the map ended, failed or was closed early: the actors go, with any job still queued
            for actor in actors:
                ray.kill(actor, no_restart=True)

    @staticmethod
    def _outcome(ray, ref, job) -> Outcome:
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError

        try:
            value = ray.get(ref)
        except RayTaskError as e:  # Task.run raised: it ends the map, as in every runner
            raise (e.cause if isinstance(e.cause, BaseException) else e) from None
        except (RayActorError, WorkerCrashedError, ObjectLostError) as e:
            return Outcome(job, lost=f"{LOST_ON_RAY} ({type(e).__name__})")
        if isinstance(value, SetupFailed):
            raise value.error
        return Outcome(job, value)


def import_ray():
    """The ``ray`` module, or MissingDependency saying how to install it."""
    try:
        import ray
    except ModuleNotFoundError as exc:
        raise MissingDependency("running on Ray needs the `distributed` extra: pip install 'cadenza[distributed]'") from exc
    return ray


def _connect(ray, address: str | None) -> bool:
    """Connect this process to Ray (a new instance here, or a cluster); False when it already was."""
    if ray.is_initialized():
        return False
    quiet = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address is None:
        # "local" starts a new instance: without it Ray would join whatever cluster this machine last started
        ray.init(address="local", num_cpus=os.cpu_count() or 1, **quiet)
        return True
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        from cadenza.errors import InvalidConditioning

        raise InvalidConditioning(f"cannot join the Ray cluster at {address}: {exc}") from None
    return True
