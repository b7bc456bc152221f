"""The page where a user creates, replaces or revokes their own API token.

One token per user (``rest_framework.authtoken``). Its key is shown once, on the page that
creates it, and never again (the page afterwards shows only its last four characters), so a
key left on a screen is not readable later. Creating and revoking are audited.
"""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from rest_framework.authtoken.models import Token

from core import audit


@never_cache
def api_token(request):
    token = Token.objects.filter(user=request.user).first()
    action = request.POST.get("action") if request.method == "POST" else None
    if action == "create":
        replaced = token is not None
        if replaced:
            token.delete()
        token = Token.objects.create(user=request.user)
        audit.record("api.token_created",
                     f"API token {'replaced' if replaced else 'created'} by "
                     f"{request.user.get_username()} (ends …{token.key[-4:]})",
                     actor=request.user)
        return render(request, "api/token.html", {"token": token, "new_key": token.key})
    if action == "revoke":
        if token is not None:
            ending = token.key[-4:]
            token.delete()
            audit.record("api.token_revoked", f"API token revoked by "
                         f"{request.user.get_username()} (ended …{ending})", actor=request.user)
            messages.success(request, _("Your API token is revoked: it no longer works."))
        return redirect("api_token")
    status = 400 if request.method == "POST" else 200
    return render(request, "api/token.html", {"token": token}, status=status)
