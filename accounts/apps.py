from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and security"

    def ready(self):
        # Django's login signals are the documented way to observe logins; axes' lockout signal
        # the documented way to observe lockouts. They only write to the audit log.
        from . import signals  # noqa: F401
