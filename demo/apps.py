from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo data and its commands (``demo_setup``, ``demo_totp_code``): imported by no
    other app."""

    name = "demo"
