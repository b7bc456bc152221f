"""DRF permission classes of the API. They decide nothing themselves: ``trials.policy`` does,
as for the pages, so a page and the API give the same answer to the same person.

A view names the permission each HTTP method needs (``perms``) and where it applies
(``scope()``: the trial, and the site of the object the URL names). ``scope()`` looks the
objects up through the selectors, so an object the user may not see is a 404 before any
permission is asked, exactly as on the pages (another site's participant: 404, not 403).
"""
from __future__ import annotations

from rest_framework.permissions import BasePermission

from trials import policy


class PolicyPermission(BasePermission):
    """``view.perms[method]`` at ``view.scope()``, asked of ``trials.policy.has_perm``."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401
        trial, site = view.scope()  # 404 for what the user may not see
        perm = view.perms.get(request.method, view.perms.get("GET"))
        return perm is None or policy.has_perm(user, perm, trial, site)
