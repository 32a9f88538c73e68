from django.urls import path

from . import views

app_name = "training"

urlpatterns = [
    path("p/<slug:slug>/curation/", views.curation, name="curation"),
    path("p/<slug:slug>/curation/<int:recipe_id>/export/", views.export_new, name="export_new"),
    path("p/<slug:slug>/exports/<uuid:export_id>/", views.export_detail, name="export_detail"),
    path("p/<slug:slug>/exports/<uuid:export_id>/files/<str:name>", views.export_download, name="export_download"),
]
