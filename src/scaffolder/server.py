"""``scaffolder serve``: one process, a pool of HTTP threads, the task workers beside them.

The server is cheroot (CherryPy's WSGI server): threaded, one process, and it writes each
chunk of a streamed response to the socket as it comes, so the event stream is not buffered.
One process holds the API and the task workers, Backstage's embedded default; workers can also
run apart (``scaffolder worker``). We used gunicorn first: its gthread worker answered no faster
here, and its master process added ~29 MB of RSS to every instance.
"""

from __future__ import annotations

import gc
import ipaddress
import logging
import signal
import threading
from types import FrameType

from cheroot import wsgi

from scaffolder.errors import InputError
from scaffolder.settings import Settings

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``); anything else is not."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen_policy(settings: Settings, host: str) -> None:
    """Refuse to serve without auth on an address other hosts can reach.

    Raises:
        InputError: ``dangerouslyDisableDefaultAuthPolicy`` on a non-loopback ``host``
            without ``backend.auth.allowInsecureNonLoopback: true``.
    """
    if not settings.auth_disabled or is_loopback(host):
        return
    if settings.allow_insecure_non_loopback:
        log.warning("auth is disabled on %s: anyone who can reach it can run templates", host)
        return
    raise InputError(
        "backend.auth.dangerouslyDisableDefaultAuthPolicy is only allowed when listening on "
        f"loopback, and the listen host is {host}. Configure tokens "
        "(backend.auth.externalAccess, backend.auth.backstage), listen on 127.0.0.1, or set "
        "backend.auth.allowInsecureNonLoopback: true to let anyone who can reach the port "
        "run templates"
    )


def settle_heap() -> None:
    """Keep the objects built at start-up out of every later garbage collection.

    Imports, the app, compiled schemas and templates leave ~130,000 objects the cyclic
    collector tracks. A full collection walks all of them while every thread of the process
    waits: 25-90 ms each, several times in a burst of tasks, and those pauses were the tail of
    the event latency on the stream. ``gc.freeze()`` moves them to the permanent generation,
    as Instagram's and gunicorn's preloading servers do; they live as long as the process
    anyway. Later collections walk only what was made since.
    """
    gc.collect()
    gc.freeze()
    log.debug("%d start-up objects kept out of garbage collection", gc.get_freeze_count())


#: HTTP threads. Each open event stream (and each long poll of events) holds one for as long
#: as its task runs, so the pool is sized for a few hundred people watching tasks at once;
#: an idle thread costs a little memory and no CPU.
DEFAULT_HTTP_THREADS = 256


def serve(settings: Settings, *, host: str, port: int, threads: int = DEFAULT_HTTP_THREADS) -> None:
    """Migrate the database, build the services and serve until SIGTERM or SIGINT.

    Raises:
        InputError: auth is disabled and ``host`` is not loopback (`check_listen_policy`).
    """
    from scaffolder.app import create_app
    from scaffolder.services import build_services

    check_listen_policy(settings, host)
    services = build_services(settings, with_worker=True)
    app = create_app(services=services)
    server = wsgi.Server(
        (host, port),
        app,
        numthreads=threads,
        server_name="scaffolder",
        # An event stream or a long poll stays open for as long as the task runs.
        timeout=60,
        shutdown_timeout=5,
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("received signal %d, shutting down", signum)
        # Off the signal handler's frame: the workers drain first (no new claims, running
        # tasks get scaffolder.shutdownGracePeriod, the rest are handed back) while the API
        # still answers, so their event streams see them end; then the HTTP threads stop.
        threading.Thread(target=drain_then_stop, name="scaffolder-stop", daemon=True).start()

    def drain_then_stop() -> None:
        try:
            if services.worker is not None:
                services.worker.stop()
        finally:
            server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settle_heap()
    log.info("serving on http://%s:%d", host, port)
    try:
        server.safe_start()
    finally:
        services.close()
