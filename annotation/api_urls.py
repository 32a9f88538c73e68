from django.urls import path

from . import api

urlpatterns = [
    path("projects/", api.ProjectListView.as_view(), name="api-projects"),
    path("projects/<slug:slug>/", api.ProjectDetailView.as_view(), name="api-project"),
    path("projects/<slug:slug>/progress/", api.ProgressView.as_view(), name="api-progress"),
    path("projects/<slug:slug>/quality/", api.QualityView.as_view(), name="api-quality"),
    path("projects/<slug:slug>/imports/", api.ImportView.as_view(), name="api-imports"),
    path("projects/<slug:slug>/imports/<uuid:batch_id>/", api.ImportDetailView.as_view(), name="api-import"),
    path("projects/<slug:slug>/assignments/next/", api.NextAssignmentView.as_view(), name="api-next"),
    path("projects/<slug:slug>/assignments/<uuid:assignment_id>/label/", api.LabelView.as_view(), name="api-label"),
    path("projects/<slug:slug>/assignments/<uuid:assignment_id>/skip/", api.SkipView.as_view(), name="api-skip"),
]
