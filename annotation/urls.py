from django.urls import path

from .views import annotate, lead, pairs

app_name = "annotation"

urlpatterns = [
    path("", lead.project_list, name="project_list"),
    path("projects/new/", lead.project_new, name="project_new"),
    path("pygments.css", annotate.pygments_stylesheet, name="pygments_css"),
    path("p/<slug:slug>/", lead.project_detail, name="project_detail"),
    path("p/<slug:slug>/settings/", lead.project_settings, name="project_settings"),
    path("p/<slug:slug>/guidelines/", lead.guidelines, name="guidelines"),
    path("p/<slug:slug>/members/", lead.members, name="members"),
    path("p/<slug:slug>/members/<int:user_id>/remove/", lead.member_remove, name="member_remove"),
    path("p/<slug:slug>/members/<int:user_id>/reinstate/", lead.member_reinstate, name="member_reinstate"),
    path("p/<slug:slug>/quality/", lead.quality, name="quality"),
    path("p/<slug:slug>/pairs/", pairs.pair_list, name="pairs"),
    path("p/<slug:slug>/pairs/<int:pair_id>/", pairs.pair_detail, name="pair_detail"),
    path("p/<slug:slug>/imports/", lead.imports, name="imports"),
    path("p/<slug:slug>/imports/<uuid:batch_id>/", lead.import_detail, name="import_detail"),
    path("p/<slug:slug>/annotate/", annotate.annotate_page, name="annotate"),
    path("p/<slug:slug>/annotate/next/", annotate.annotate_next, name="annotate_next"),
    path("p/<slug:slug>/annotate/<uuid:assignment_id>/submit/", annotate.annotate_submit, name="annotate_submit"),
    path("p/<slug:slug>/annotate/<uuid:assignment_id>/skip/", annotate.annotate_skip, name="annotate_skip"),
]
