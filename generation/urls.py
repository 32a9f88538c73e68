from django.urls import path

from . import views

app_name = "generation"

urlpatterns = [
    path("p/<slug:slug>/generation/", views.home, name="home"),
    path("p/<slug:slug>/generation/generators/new/", views.generator_edit, name="generator_new"),
    path("p/<slug:slug>/generation/generators/<uuid:generator_id>/", views.generator_edit, name="generator_edit"),
    path("p/<slug:slug>/generation/runs/<uuid:generation_run_id>/", views.run_detail, name="run_detail"),
    path("p/<slug:slug>/generation/runs/<uuid:generation_run_id>/<str:action>/", views.run_action, name="run_action"),
    path("p/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/", views.prompt_set, name="prompt_set"),
    path("p/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/kto.jsonl", views.kto_download, name="kto_download"),
    path("p/<slug:slug>/prompt-sets/<uuid:prompt_set_id>/rating/", views.rating_open_view, name="rating_open"),
    path("p/<slug:slug>/candidates/<int:candidate_id>/gold/", views.candidate_gold, name="candidate_gold"),
    path("p/<slug:slug>/rate/", views.rate, name="rate"),
    path("p/<slug:slug>/rate/<int:candidate_id>/", views.rate_submit, name="rate_submit"),
]
