from django.urls import path

from .views import campaigns, curation, evaluations, jobs, pipeline, sweeps

app_name = "training"

urlpatterns = [
    path("p/<slug:slug>/start/", pipeline.start, name="start"),
    path("p/<slug:slug>/curation/", curation.curation, name="curation"),
    path("p/<slug:slug>/curation/<int:recipe_id>/export/", curation.export_new, name="export_new"),
    path("p/<slug:slug>/exports/<uuid:export_id>/", curation.export_detail, name="export_detail"),
    path("p/<slug:slug>/exports/<uuid:export_id>/files/<str:name>", curation.export_download, name="export_download"),
    path("p/<slug:slug>/exports/<uuid:export_id>/push/", curation.export_push, name="export_push"),
    path("training/", jobs.jobs, name="jobs"),
    path("training/jobs/<uuid:job_id>/", jobs.job_detail, name="job_detail"),
    path("training/jobs/<uuid:job_id>/progress.json", jobs.job_progress_json, name="job_progress"),
    path("training/jobs/<uuid:job_id>/cancel/", jobs.job_cancel_view, name="job_cancel"),
    path("training/jobs/<uuid:job_id>/generator/", jobs.job_generator_view, name="job_generator"),
    path("training/jobs/<uuid:job_id>/reward-model/", jobs.job_reward_model_view, name="job_reward_model"),
    path("training/jobs/<uuid:job_id>/files/<str:name>", jobs.job_download, name="job_download"),
    path("training/jobs/<uuid:job_id>/evaluations/", evaluations.evaluation_new, name="evaluation_new"),
    path("training/evaluations/<uuid:evaluation_id>/", evaluations.evaluation_detail, name="evaluation_detail"),
    path("training/sweeps/", sweeps.sweeps, name="sweeps"),
    path("training/sweeps/<uuid:sweep_id>/", sweeps.sweep_detail, name="sweep_detail"),
    path("training/sweeps/<uuid:sweep_id>/progress.json", sweeps.sweep_progress_json, name="sweep_progress"),
    path("training/sweeps/<uuid:sweep_id>/cancel/", sweeps.sweep_cancel_view, name="sweep_cancel"),
    path("training/sweeps/<uuid:sweep_id>/promote/", sweeps.sweep_promote_view, name="sweep_promote"),
    path("training/campaigns/", campaigns.campaigns, name="campaigns"),
    path("training/campaigns/<uuid:campaign_id>/", campaigns.campaign_detail, name="campaign_detail"),
    path(
        "training/campaigns/<uuid:campaign_id>/progress.json",
        campaigns.campaign_progress_json,
        name="campaign_progress",
    ),  # fmt: skip
    path("training/campaigns/<uuid:campaign_id>/resume/", campaigns.campaign_resume_view, name="campaign_resume"),
    path("training/campaigns/<uuid:campaign_id>/cancel/", campaigns.campaign_cancel_view, name="campaign_cancel"),
    path(
        "training/evaluations/<uuid:evaluation_id>/progress.json",
        evaluations.evaluation_progress_json,
        name="evaluation_progress",
    ),
    path(
        "training/evaluations/<uuid:evaluation_id>/<str:action>/",
        evaluations.evaluation_action,
        name="evaluation_action",
    ),
]
