from django.urls import path

from . import job_views, views

app_name = "training"

urlpatterns = [
    path("p/<slug:slug>/curation/", views.curation, name="curation"),
    path("p/<slug:slug>/curation/<int:recipe_id>/export/", views.export_new, name="export_new"),
    path("p/<slug:slug>/exports/<uuid:export_id>/", views.export_detail, name="export_detail"),
    path("p/<slug:slug>/exports/<uuid:export_id>/files/<str:name>", views.export_download, name="export_download"),
    path("training/", job_views.jobs, name="jobs"),
    path("training/jobs/<uuid:job_id>/", job_views.job_detail, name="job_detail"),
    path("training/jobs/<uuid:job_id>/progress.json", job_views.job_progress_json, name="job_progress"),
    path("training/jobs/<uuid:job_id>/cancel/", job_views.job_cancel_view, name="job_cancel"),
    path("training/jobs/<uuid:job_id>/files/<str:name>", job_views.job_download, name="job_download"),
]
