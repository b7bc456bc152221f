"""gunicorn's settings, read from the working directory wherever the app is served:
``docker-compose.yml``'s web service, ``bin/run-stack`` and ``bench/randomise_http.py``.

Workers: one per core the process may run on, unless ``WEB_WORKERS`` says otherwise. A request
is Python working between short database round trips (PostgreSQL on the same machine), so
more workers than cores do not add throughput: they share the cores, and every request in
flight takes longer. Measured at 16 clients on 2 cores (README, "Benchmarks"): 2 workers gave
the same randomisations a second as 4 and a p95 a quarter lower. A sync worker serves one
request at a time, so raise ``WEB_WORKERS`` where several long exports run at once.

Timeout: gunicorn kills a sync worker that has not finished its response within ``timeout``
seconds. A streamed export of a large trial runs for minutes (``bench/export_stream.py``: 70 s
for 300 MB of CSV), and gunicorn's default of 30 s would cut it off: ``WEB_TIMEOUT``, 600 s.
"""
import os

workers = int(os.environ.get("WEB_WORKERS") or len(os.sched_getaffinity(0)))
timeout = int(os.environ.get("WEB_TIMEOUT") or 600)
