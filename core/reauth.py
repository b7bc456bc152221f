"""Re-authentication: the password typed again before a signature or an unblinding."""
from __future__ import annotations

from django.contrib.auth import authenticate


def password_confirmed(request, user, password: str) -> bool:
    """The password typed again before signing or unblinding. In a request it goes through
    ``authenticate`` (so django-axes counts failures and locks out guessing, and the failure is
    audited); outside one (management commands, the demo) it is checked directly."""
    if not password:
        return False
    if request is None:
        return user.is_active and user.check_password(password)
    return authenticate(request, username=user.get_username(), password=password) is not None
