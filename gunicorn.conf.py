"""gunicorn's settings, read from the working directory wherever the app is served:
``docker-compose.yml``'s web service, ``bin/run-stack`` and ``bench/randomise_http.py``.

Workers: one per core the process may run on, plus one, unless ``WEB_WORKERS`` says otherwise.
A request is Python working between short database round trips (PostgreSQL on the same
machine), so it is the cores that bound throughput, with one exception: a sync worker waiting
on PostgreSQL — for a row lock another randomisation in the same stratum holds until its COMMIT,
or for the log flush of its own COMMIT — leaves its core idle. One more worker fills that
time; more than that only shares the cores, and every request in flight takes longer
(``bench/randomise_http.py`` measures it). A sync worker serves one request at a time, so raise
``WEB_WORKERS`` where several long exports run at once.

Timeout: gunicorn kills a sync worker that has not finished its response within ``timeout``
seconds. A streamed export of a large trial runs for minutes (``bench/export_stream.py``), and
gunicorn's default of 30 s would cut it off: ``WEB_TIMEOUT``, 600 s.
"""
import os

workers = int(os.environ.get("WEB_WORKERS") or len(os.sched_getaffinity(0)) + 1)
timeout = int(os.environ.get("WEB_TIMEOUT") or 600)
