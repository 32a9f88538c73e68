from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/judges/", api.JudgeListView.as_view(), name="api-judges"),
    path("projects/<slug:slug>/judge-runs/", api.RunListView.as_view(), name="api-judge-runs"),
    path("projects/<slug:slug>/judge-runs/<uuid:run_id>/", api.RunDetailView.as_view(), name="api-judge-run"),
    path(
        "projects/<slug:slug>/judge-runs/<uuid:run_id>/<str:action>/",
        api.RunActionView.as_view(),
        name="api-judge-run-action",
    ),
]
