from django.urls import path

from . import views

app_name = "judging"

urlpatterns = [
    path("p/<slug:slug>/judges/", views.judges, name="judges"),
    path("p/<slug:slug>/judges/new/", views.judge_edit, name="judge_new"),
    path("p/<slug:slug>/judges/<uuid:judge_id>/", views.judge_edit, name="judge_edit"),
    path("p/<slug:slug>/judge-runs/<uuid:run_id>/", views.run_detail, name="run_detail"),
    path(
        "p/<slug:slug>/judge-runs/<uuid:run_id>/<str:action>/",
        views.run_action,
        name="run_action",
    ),
]
