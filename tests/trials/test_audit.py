"""The governance audit log (``trials.audit``)."""
from __future__ import annotations

import pytest

from trials import audit
from trials.models import AuditEvent


def test_the_audit_log_refuses_an_object_without_a_key():
    """An entry naming an object not saved yet would name nothing."""
    with pytest.raises(ValueError, match="trials.AuditEvent has no key yet"):
        audit.record("test.nokey", "x", obj=AuditEvent(action="x"))
