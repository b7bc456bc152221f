from django.apps import AppConfig


class SupplyConfig(AppConfig):
    name = "supply"
    verbose_name = "Investigational product supply"
