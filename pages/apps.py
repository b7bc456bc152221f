from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The pages that bring several layers together: home, trial overview, participant, visit
    and CRF pages. Thin views over the selectors and services of the apps below."""

    name = "pages"
