"""Jobs: the job table's queue, the handler registry and the worker."""

from guestlist.jobs.queue import (
    ClaimedJob,
    claim,
    complete,
    enqueue,
    fail,
    recover_stale,
    retry_dead,
)
from guestlist.jobs.registry import UnknownJobKind, job_handler
from guestlist.jobs.worker import Worker

__all__ = [
    "ClaimedJob",
    "UnknownJobKind",
    "Worker",
    "claim",
    "complete",
    "enqueue",
    "fail",
    "job_handler",
    "recover_stale",
    "retry_dead",
]
