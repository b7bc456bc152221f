from django.apps import AppConfig


class CrfsConfig(AppConfig):
    """Case report forms: records built from the protocol's forms, edit checks, derived values,
    signatures, locks, data queries and the field-level trail; eligibility read from them."""

    name = "crfs"
    verbose_name = "Case report forms"
