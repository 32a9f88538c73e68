from django.urls import path

from . import api, job_api

urlpatterns = [
    path("projects/<slug:slug>/recipes/", api.RecipeListView.as_view(), name="api-recipes"),
    path("projects/<slug:slug>/recipes/preview/", api.PreviewView.as_view(), name="api-recipe-preview"),
    path("projects/<slug:slug>/exports/", api.ExportListView.as_view(), name="api-exports"),
    path("projects/<slug:slug>/exports/<uuid:export_id>/", api.ExportDetailView.as_view(), name="api-export"),
]

urlpatterns += [
    path("training/jobs/", job_api.JobListView.as_view(), name="api-training-jobs"),
    path("training/jobs/<uuid:job_id>/", job_api.JobDetailView.as_view(), name="api-training-job"),
    path("training/jobs/<uuid:job_id>/progress/", job_api.JobProgressView.as_view(), name="api-training-progress"),
    path("training/jobs/<uuid:job_id>/cancel/", job_api.JobCancelView.as_view(), name="api-training-cancel"),
]
