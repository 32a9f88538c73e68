from django.urls import path

from . import views
from .stacking import views as stacking

app_name = "judging"

urlpatterns = [
    path("p/<slug:slug>/judges/", views.judges, name="judges"),
    path("p/<slug:slug>/judges/new/", views.judge_edit, name="judge_new"),
    path("p/<slug:slug>/judges/<uuid:judge_id>/", views.judge_edit, name="judge_edit"),
    path("p/<slug:slug>/judges/reward-models/new/", views.reward_model_edit, name="reward_model_new"),
    path("p/<slug:slug>/judges/<uuid:judge_id>/audit/", views.scorer_audit_page, name="judge_audit"),
    path("p/<slug:slug>/judge-runs/<uuid:run_id>/", views.run_detail, name="run_detail"),
    path(
        "p/<slug:slug>/judge-runs/<uuid:run_id>/<str:action>/",
        views.run_action,
        name="run_action",
    ),
    path("p/<slug:slug>/judges/composites/", stacking.composites, name="composites"),
    path("p/<slug:slug>/judges/composites/new/", stacking.composite_edit, name="composite_new"),
    path("p/<slug:slug>/judges/composites/<uuid:composite_id>/", stacking.composite_detail, name="composite_detail"),
    path("p/<slug:slug>/judges/composites/<uuid:composite_id>/edit/", stacking.composite_edit, name="composite_edit"),
    path(
        "p/<slug:slug>/judges/composites/<uuid:composite_id>/compute/",
        stacking.composite_compute_view,
        name="composite_compute",
    ),
]
