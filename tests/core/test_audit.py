"""The governance audit log (``core.audit``)."""
from __future__ import annotations

import pytest

from core import audit
from core.models import AuditEvent


def test_the_audit_log_refuses_an_object_without_a_key():
    """An entry naming an object not saved yet would name nothing."""
    with pytest.raises(ValueError, match="core.AuditEvent has no key yet"):
        audit.record("test.nokey", "x", obj=AuditEvent(action="x"))
