from django.urls import path

from . import api
from .stacking import api as stacking

urlpatterns = [
    path("projects/<slug:slug>/judges/", api.JudgeListView.as_view(), name="api-judges"),
    path("projects/<slug:slug>/judges/<uuid:judge_id>/", api.JudgeDetailView.as_view(), name="api-judge"),
    path("projects/<slug:slug>/judges/<uuid:judge_id>/audit/", api.JudgeAuditView.as_view(), name="api-judge-audit"),
    path("projects/<slug:slug>/judge-runs/", api.RunListView.as_view(), name="api-judge-runs"),
    path("projects/<slug:slug>/judge-runs/<uuid:run_id>/", api.RunDetailView.as_view(), name="api-judge-run"),
    # before the actions: "verdicts" is not one
    path(
        "projects/<slug:slug>/judge-runs/<uuid:run_id>/verdicts/",
        api.RunVerdictsView.as_view(),
        name="api-judge-run-verdicts",
    ),
    path(
        "projects/<slug:slug>/judge-runs/<uuid:run_id>/<str:action>/",
        api.RunActionView.as_view(),
        name="api-judge-run-action",
    ),
    path("projects/<slug:slug>/composites/", stacking.CompositeListView.as_view(), name="api-composites"),
    path(
        "projects/<slug:slug>/composites/<uuid:composite_id>/",
        stacking.CompositeDetailView.as_view(),
        name="api-composite",
    ),
    path(
        "projects/<slug:slug>/composites/<uuid:composite_id>/compute/",
        stacking.CompositeComputeView.as_view(),
        name="api-composite-compute",
    ),
    path(
        "projects/<slug:slug>/composites/<uuid:composite_id>/scores/",
        stacking.CompositeScoresView.as_view(),
        name="api-composite-scores",
    ),
]
