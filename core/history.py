"""Row history (django-simple-history) set-up, shared by every tracked model.

django-simple-history's ``HistoryDescriptor`` calls ``HistoryManager.from_queryset`` on every
access to ``Model.history`` or ``instance.history``, and ``from_queryset`` builds a new class
each time (walking the queryset class with ``inspect.getmembers``). Every save of a tracked row
goes through that descriptor to write its history row, so a class was built for each write.
The class depends only on the manager and queryset classes, so it is built once and reused;
the manager *instance* is still made per access, bound to the instance asked for.
"""
from __future__ import annotations

from simple_history import manager, models


class HistoryManager(manager.HistoryManager):
    _classes: dict[tuple, type] = {}

    @classmethod
    def from_queryset(cls, queryset_class, class_name=None):
        key = (cls, queryset_class, class_name)
        built = cls._classes.get(key)
        if built is None:
            built = cls._classes[key] = super().from_queryset(queryset_class, class_name)
        return built


def HistoricalRecords(**options) -> models.HistoricalRecords:  # noqa: N802 (reads as the class)
    """``simple_history.models.HistoricalRecords`` with the manager above."""
    return models.HistoricalRecords(history_manager=HistoryManager, **options)


def change_reason(text: str) -> str:
    """``text`` as a history row's change reason: django-simple-history keeps 100 characters by
    default (PostgreSQL would refuse a longer one), so a longer text is cut with "…"; callers
    keep the whole text where it matters (the audit log, a visit's ``status_reason``)."""
    return text if len(text) <= 100 else text[:99] + "…"
