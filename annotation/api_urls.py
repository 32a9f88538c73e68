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
    path("projects/<slug:slug>/members/", api.MemberListView.as_view(), name="api-members"),
    path("projects/<slug:slug>/members/<int:user_id>/", api.MemberDetailView.as_view(), name="api-member"),
    path(
        "projects/<slug:slug>/members/<int:user_id>/reinstate/",
        api.MemberReinstateView.as_view(),
        name="api-member-reinstate",
    ),
    path("projects/<slug:slug>/guidelines/", api.GuidelineListView.as_view(), name="api-guidelines"),
    path("projects/<slug:slug>/pairs/", api.PairListView.as_view(), name="api-pairs"),
    path("projects/<slug:slug>/pairs/<int:pair_id>/", api.PairDetailView.as_view(), name="api-pair"),
    path(
        "projects/<slug:slug>/pairs/<int:pair_id>/calibration/",
        api.PairCalibrationView.as_view(),
        name="api-pair-calibration",
    ),
    path("projects/<slug:slug>/labels/", api.LabelDumpView.as_view(), name="api-labels"),
]
