"""Reads in plain SQL (``trials.sql``) give what the ORM gives: same values, same types."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone

from crfs.models import CRFRecord
from patients.models import Participant
from tests import factories
from trials import sql
from trials.models import Membership, Trial


def read_back(model, pk):
    fields = sql.fields_of(model)
    (row,) = sql.fetch(f"SELECT {sql.columns(fields, 'x')} FROM {sql.table(model)} x "
                       f"WHERE x.id = %s", [pk])
    return sql.instance(model, row)


def values(obj):
    return {f.attname: (type(getattr(obj, f.attname)), getattr(obj, f.attname))
            for f in type(obj)._meta.concrete_fields}


def test_instances_read_as_sql_are_the_ones_the_orm_reads(reminet, make_user):
    reminet.unblinded_at = timezone.now()  # a date and time: text on SQLite until converted
    reminet.save()
    coordinator = make_user("coordinator", reminet, reminet.sites.first())
    membership = coordinator.memberships.get()  # ``active``: 1 on SQLite until converted
    participant = factories.eligible_participant(reminet, by=coordinator)  # dates
    for model, obj in ((Trial, reminet), (Membership, membership), (Participant, participant)):
        built, orm = read_back(model, obj.pk), model.objects.get(pk=obj.pk)
        assert values(built) == values(orm)
        assert not built._state.adding and built._state.db == orm._state.db
    assert read_back(Trial, reminet.pk).unblinded_at.tzinfo is not None
    assert read_back(Membership, membership.pk).active is True
    assert isinstance(read_back(Participant, participant.pk).consent_date, dt.date)


def test_converted_values_are_the_ones_the_orm_returns(reminet, make_user):
    coordinator = make_user("coordinator", reminet, reminet.sites.first())
    participant = factories.eligible_participant(reminet, by=coordinator)
    fields = [CRFRecord._meta.get_field(name) for name in ("crf_code", "status", "data",
                                                          "created_at")]
    rows = sql.fetch(f"SELECT {sql.columns(fields, 'r')} FROM {sql.table(CRFRecord)} r "
                     f"WHERE r.participant_id = %s ORDER BY r.id", [participant.pk])
    assert rows
    assert [tuple(sql.converted(fields, row)) for row in rows] == list(
        CRFRecord.objects.filter(participant=participant).order_by("pk")
        .values_list("crf_code", "status", "data", "created_at"))
    assert isinstance(sql.converted(fields, rows[0])[2], dict)  # JSON, parsed
