from django.urls import path

from . import api

urlpatterns = [
    path("projects/<slug:slug>/recipes/", api.RecipeListView.as_view(), name="api-recipes"),
    path("projects/<slug:slug>/recipes/preview/", api.PreviewView.as_view(), name="api-recipe-preview"),
    path("projects/<slug:slug>/exports/", api.ExportListView.as_view(), name="api-exports"),
    path("projects/<slug:slug>/exports/<uuid:export_id>/", api.ExportDetailView.as_view(), name="api-export"),
]
