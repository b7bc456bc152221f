from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    """The visit schedule planned from the protocol and the participant's CRF facts (anchors,
    events), kept current when a CRF is saved or a coordinator acts on a visit."""

    name = "scheduling"
