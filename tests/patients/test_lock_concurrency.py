"""A freeze never slips between a change's check and its commit (PostgreSQL): while a change
is in flight its site and trial rows are share-locked, so the freeze or lock of either (an
UPDATE of that row) waits for it, and other changes at the site do not."""
from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction
from psycopg import errors

from patients.locks import refuse_change
from tests.crf_world import *  # noqa: F401,F403

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _other_connection() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s.get("PASSWORD") or None,
                           host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432,
                           autocommit=True)


def test_a_change_in_flight_holds_off_a_freeze_of_its_site_and_trial(participant):
    with transaction.atomic():
        refuse_change(participant)  # open: the change may go on, and holds its site and trial
        with _other_connection() as other:
            for table, pk in (("trials_site", participant.site_id),
                              ("trials_trial", participant.trial_id)):
                with pytest.raises(errors.LockNotAvailable):
                    other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE NOWAIT",
                                  [pk])
                # Another change at the same site takes the same shared lock: no wait.
                other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE NOWAIT", [pk])
    with _other_connection() as other:  # committed: the freeze may proceed
        other.execute("SELECT 1 FROM trials_site WHERE id = %s FOR UPDATE NOWAIT",
                      [participant.site_id])
