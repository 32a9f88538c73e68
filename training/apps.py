from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 - connects the project clean-up receiver
        from .campaigns import receivers as campaign_receivers  # noqa: F401 - and the campaigns' (their tasks too)
