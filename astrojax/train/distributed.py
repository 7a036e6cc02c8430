"""Joining several processes (hosts) into one JAX system before anything else touches JAX.

``train.distributed=True`` calls ``jax.distributed.initialize``: with ``train.coordinator_address``,
``train.num_processes`` and ``train.process_id`` when they are set, else with no arguments, so
that JAX reads them from the cluster's environment (SLURM's ``srun``, Open MPI's ``mpirun``,
Cloud TPU pods; Kubernetes when the ``kubernetes`` package is installed and the pod may list
pods). Every process runs the same command; process 0 also hosts the coordinator.

Why the checks here: a process that cannot reach the coordinator, or a coordinator whose peers
never connect, is ended by XLA's C++ runtime after ``initialization_timeout`` with a stack trace
and no Python exception. So a process other than 0 first checks that the coordinator's port
answers (one line naming the address if it does not), and every process logs, before it waits,
who it is, where it connects and how long it will wait.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import time

from astrojax.config import Config
from astrojax.config.run_checks import check_distributed

log = logging.getLogger(__name__)


class DistributedError(RuntimeError):
    """Several processes could not be joined; one line naming the address and what to do."""


def initialize(cfg: Config, timeout_s: int = 300) -> bool:
    """Joins this process to the others when ``cfg.train.distributed`` is set (see the module
    docstring); returns whether it is part of a multi-process system. Call it before any other
    JAX call. A bad combination of the fields is a ConfigError naming the key; no cluster
    environment, or a coordinator that does not answer within ``timeout_s``, a DistributedError.
    Grain's worker processes (children of the trainer) never join: their parent has."""
    t = cfg.train
    check_distributed(t)
    if not t.distributed or multiprocessing.parent_process() is not None:
        return False
    import jax  # only now: the checks above need no JAX

    if jax.distributed.is_initialized():
        return True
    if t.coordinator_address:
        kwargs = dict(coordinator_address=t.coordinator_address,
                      num_processes=t.num_processes, process_id=t.process_id)
        log.info("process %d of %d: joining the coordinator at %s (waits up to %d s for all "
                 "%d processes)", t.process_id, t.num_processes, t.coordinator_address,
                 timeout_s, t.num_processes)
        if t.process_id != 0:
            _wait_for_coordinator(t.coordinator_address, timeout_s)
    else:
        kwargs = {}
        log.info("joining the processes of this job as JAX detects them from the environment "
                 "(waits up to %d s for all of them)", timeout_s)
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=timeout_s)
    except ValueError as err:  # JAX found no address, process count or id
        if kwargs:
            raise DistributedError(f"jax.distributed.initialize refused the settings: {err}") \
                from err
        raise DistributedError(
            "train.distributed=True but JAX detected no cluster environment (SLURM srun, Open "
            "MPI mpirun, Cloud TPU, Kubernetes with the kubernetes package): set "
            "train.coordinator_address, train.num_processes and train.process_id") from err
    except RuntimeError as err:  # called after JAX started, or twice
        raise DistributedError(" ".join(str(err).split())) from err
    log.info("process %d of %d: %d local of %d devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
    return True


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Returns once ``address``'s port accepts a connection; a DistributedError after
    ``timeout_s``."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")  # an IPv6 literal
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=5):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"cannot reach the coordinator at {address} (train.coordinator_address) "
                    f"within {timeout_s:g} s ({err.strerror or err}): process 0 hosts it, and "
                    "every process must be started, with the same address") from err
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
