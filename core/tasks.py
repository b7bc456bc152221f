from .notify import send_notification  # noqa: F401  (registers the task with Celery workers)
