from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/prompt-sets/", api.PromptSetListView.as_view(), name="api-prompt-sets"),
    path(
        "projects/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/",
        api.PromptSetDetailView.as_view(),
        name="api-prompt-set",
    ),
    path(
        "projects/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/candidates/",
        api.CandidateListView.as_view(),
        name="api-prompt-set-candidates",
    ),
    path(
        "projects/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/pairs/",
        api.PairsView.as_view(),
        name="api-prompt-set-pairs",
    ),
    path(
        "projects/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/kto/", api.KtoView.as_view(), name="api-prompt-set-kto"
    ),
    path(
        "projects/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/rating/",
        api.PromptSetRatingView.as_view(),
        name="api-prompt-set-rating",
    ),
    path(
        "projects/<slug:slug>/candidates/<int:candidate_id>/gold/",
        api.CandidateGoldView.as_view(),
        name="api-candidate-gold",
    ),
    path("projects/<slug:slug>/generators/", api.GeneratorListView.as_view(), name="api-generators"),
    path(
        "projects/<slug:slug>/generators/<uuid:generator_id>/", api.GeneratorDetailView.as_view(), name="api-generator"
    ),
    path("projects/<slug:slug>/generation-runs/", api.RunListView.as_view(), name="api-generation-runs"),
    path(
        "projects/<slug:slug>/generation-runs/<uuid:generation_run_id>/",
        api.RunDetailView.as_view(),
        name="api-generation-run",
    ),
    path(
        "projects/<slug:slug>/generation-runs/<uuid:generation_run_id>/<str:action>/",
        api.RunActionView.as_view(),
        name="api-generation-run-action",
    ),
]
