from django.apps import AppConfig


class RandomisationConfig(AppConfig):
    name = "randomisation"
    # The name the database knows the app by: its tables (randomization_allocation, …), its
    # migrations, content types and the audit log's object types. Kept as it was when the
    # package took the project's one spelling of the word.
    label = "randomization"
