"""Starting a Celery worker: ``python -m segapp worker [--queues gpu,default] [--concurrency N]``.

The worker imports the segapp tasks and the web app's background callbacks
(:func:`segapp.jobs.celery_app.register_web_callbacks`), checks Redis first
(one-line message when it is unreachable), caps the threads of each pool process
so that N processes share the CPUs instead of fighting over them, and uses CUDA
in its pool processes when torch sees a GPU.  The CUDA check in the parent is
NVML-based, so the prefork pool can still fork safely.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess

from ..config import Settings, get_settings, parse_queues
from ..errors import ConfigError
from ..store import check_redis
from .celery_app import GPU_QUEUE

log = logging.getLogger("segapp.jobs")


def cuda_status() -> tuple[bool, str]:
    """``(available, description)`` of CUDA for torch, without initialising CUDA in this process.

    Examples
    --------
    >>> ok, text = cuda_status()
    >>> isinstance(ok, bool) and isinstance(text, str)
    True
    """
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # fork-safe availability check
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} is a CPU-only build"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
    name = "GPU"
    if shutil.which("nvidia-smi"):
        try:
            name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                  text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            pass
    return True, f"{name} (torch {torch.__version__}, CUDA {torch.version.cuda})"


def worker_plan(queues=None, concurrency: int | None = None, settings: Settings | None = None,
                cpus: int | None = None) -> dict:
    """Queues, pool size and threads per process a worker would use.

    GPU workers default to one process (one model on the GPU at a time);
    CPU workers to one process per CPU with one thread each.

    Examples
    --------
    >>> from segapp.config import Settings
    >>> worker_plan(["gpu", "default"], None, Settings(), cpus=8)
    {'queues': ['gpu', 'default'], 'concurrency': 1, 'threads': 8}
    >>> worker_plan(None, 2, Settings(), cpus=8)
    {'queues': ['default'], 'concurrency': 2, 'threads': 4}
    """
    settings = settings or get_settings()
    queues = list(parse_queues(",".join(queues), "--queues") if queues else settings.queues)
    if not cpus:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if concurrency is not None and concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}")
    n = concurrency or settings.worker_concurrency or (1 if GPU_QUEUE in queues else cpus)
    threads = settings.worker_threads or max(1, cpus // n)
    return {"queues": queues, "concurrency": n, "threads": threads}


def default_hostname(queues) -> str:
    """Node name ``<gpu|cpu>-<pid>@<host>`` (unique per process, host part used by the health check)."""
    kind = "gpu" if GPU_QUEUE in queues else "cpu"
    return f"{kind}-{os.getpid()}@{socket.gethostname()}"


def run_worker(queues: list[str] | None, concurrency: int | None, settings: Settings | None = None, *,
               hostname: str | None = None, pool: str = "prefork", loglevel: str = "INFO") -> int:
    """Start a Celery worker in this process; returns its exit status when it stops.

    Parameters
    ----------
    queues : list of str, optional
        Queues to consume (default ``settings.queues``, i.e. ``SEGAPP_QUEUES``).
    concurrency : int, optional
        Pool processes (default ``SEGAPP_WORKER_CONCURRENCY``, else 1 on a GPU queue,
        else one per CPU).
    settings : Settings, optional
        Default from the environment; needs ``redis_url``.
    hostname : str, optional
        Celery node name (default ``<gpu|cpu>-<pid>@<host>``).
    pool : str
        Celery pool; ``prefork`` enforces time limits and survives a crashing job.
    loglevel : str

    Raises
    ------
    ConfigError
        ``REDIS_URL`` unset or bad options.
    StoreUnavailableError
        Redis unreachable.
    """
    settings = settings or get_settings()
    if not settings.distributed:
        raise ConfigError("the worker needs REDIS_URL (the Redis shared with the web server), "
                          "e.g. REDIS_URL=redis://localhost:6379/0")
    check_redis(settings.redis_url)
    from ..store import check_signing_key, session_key, store_for

    store = store_for(settings)
    check_signing_key(store, session_key(store, settings.secret_key))  # it runs the web app's jobs
    plan = worker_plan(queues, concurrency, settings)
    os.environ["SEGAPP_WORKER_THREADS"] = str(plan["threads"])
    os.environ["LOKY_MAX_CPU_COUNT"] = str(plan["threads"])
    cuda_ok, cuda_text = cuda_status()
    from .celery_app import make_celery

    app = make_celery(settings)
    logging.basicConfig(level=getattr(logging, loglevel.upper(), logging.INFO),
                        format="[%(asctime)s: %(levelname)s/%(processName)s] %(message)s")
    log.info("segapp worker: queues=%s concurrency=%d threads/process=%d CUDA: %s",
             ",".join(plan["queues"]), plan["concurrency"], plan["threads"],
             cuda_text if cuda_ok else f"no ({cuda_text})")
    if GPU_QUEUE in plan["queues"] and not cuda_ok:
        log.warning("this worker consumes the %r queue but has no usable GPU (%s): GPU jobs will run on "
                    "the CPU here", GPU_QUEUE, cuda_text)
    os.environ["SEGAPP_WORKER_CUDA"] = "1" if cuda_ok else "0"
    from celery.utils.nodenames import host_format

    from .heartbeat import direct_queue

    node = host_format(hostname or default_hostname(plan["queues"]))  # expands %h like Celery does

    worker = app.Worker(
        hostname=node, queues=[*plan["queues"], direct_queue(node)],
        concurrency=plan["concurrency"], pool_cls=pool, loglevel=loglevel.upper(),
        without_gossip=True, without_mingle=True, optimization="fair")
    worker.start()
    return int(worker.exitcode or 0)


def main(argv=None) -> int:
    """``python -m segapp.jobs.worker [--queues Q] [--concurrency N] [--hostname NAME] [--pool POOL]``."""
    import argparse
    import sys

    from ..errors import SegappError

    p = argparse.ArgumentParser(prog="python -m segapp.jobs.worker", description="Start a segapp Celery worker.")
    p.add_argument("--queues", help="comma-separated queues (default SEGAPP_QUEUES)")
    p.add_argument("--concurrency", type=int)
    p.add_argument("--hostname", help="Celery node name, e.g. gpu1@%%h")
    p.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    p.add_argument("--loglevel", default="INFO")
    a = p.parse_args(argv)
    try:
        return run_worker(a.queues.split(",") if a.queues else None, a.concurrency, get_settings(),
                          hostname=a.hostname, pool=a.pool, loglevel=a.loglevel)
    except SegappError as e:
        print(f"segapp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
