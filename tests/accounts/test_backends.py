"""The user read on every request brings their profile (``accounts.backends``)."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from accounts.backends import UserWithProfileBackend
from accounts.models import Profile


def test_the_user_comes_with_their_profile_in_one_query(db, django_assert_num_queries):
    user = get_user_model().objects.create_user("reader", password="x" * 16)
    Profile.objects.create(user=user, language="fr")
    with django_assert_num_queries(1):
        found = UserWithProfileBackend().get_user(str(user.pk))
        assert found.profile.language == "fr" and found.profile.user is found
    # The same user, field for field, as Django's own backend reads them.
    assert [getattr(found, f.attname) for f in found._meta.concrete_fields] == \
        [getattr(ModelBackend().get_user(user.pk), f.attname) for f in found._meta.concrete_fields]


def test_a_user_without_a_profile_reads_as_having_none(db, django_assert_num_queries):
    user = get_user_model().objects.create_user("new", password="x" * 16)
    found = UserWithProfileBackend().get_user(user.pk)
    with django_assert_num_queries(0):
        with pytest.raises(Profile.DoesNotExist):
            found.profile


@pytest.mark.parametrize("user_id", ["999999", "not-a-number"])
def test_no_such_user_is_nobody(db, user_id):
    assert UserWithProfileBackend().get_user(user_id) is None


def test_a_deactivated_user_is_nobody(db):
    user = get_user_model().objects.create_user("gone", password="x" * 16, is_active=False)
    assert UserWithProfileBackend().get_user(user.pk) is None
