from django.urls import path

from .api import campaigns, curation, evaluations, jobs, pipeline, sweeps

urlpatterns = [
    path("projects/<slug:slug>/recipes/", curation.RecipeListView.as_view(), name="api-recipes"),
    path("projects/<slug:slug>/recipes/preview/", curation.PreviewView.as_view(), name="api-recipe-preview"),
    path("projects/<slug:slug>/exports/", curation.ExportListView.as_view(), name="api-exports"),
    path("projects/<slug:slug>/exports/<uuid:export_id>/", curation.ExportDetailView.as_view(), name="api-export"),
    path(
        "projects/<slug:slug>/exports/<uuid:export_id>/files/<str:name>",
        curation.ExportFileView.as_view(),
        name="api-export-file",
    ),
    path(
        "projects/<slug:slug>/exports/<uuid:export_id>/push/", curation.ExportPushView.as_view(), name="api-export-push"
    ),
    path("projects/<slug:slug>/pipeline/", pipeline.PipelineView.as_view(), name="api-pipeline"),
    path("training/jobs/", jobs.JobListView.as_view(), name="api-training-jobs"),
    path("training/jobs/<uuid:job_id>/", jobs.JobDetailView.as_view(), name="api-training-job"),
    path("training/jobs/<uuid:job_id>/progress/", jobs.JobProgressView.as_view(), name="api-training-progress"),
    path("training/jobs/<uuid:job_id>/cancel/", jobs.JobCancelView.as_view(), name="api-training-cancel"),
    path("training/jobs/<uuid:job_id>/files/", jobs.JobFilesView.as_view(), name="api-training-job-files"),
    path("training/jobs/<uuid:job_id>/files/<str:name>", jobs.JobFileView.as_view(), name="api-training-job-file"),
    path("training/jobs/<uuid:job_id>/generator/", jobs.JobGeneratorView.as_view(), name="api-training-generator"),
    path(
        "training/jobs/<uuid:job_id>/reward-model/",
        jobs.JobRewardModelView.as_view(),
        name="api-training-reward-model",
    ),  # fmt: skip
    path("training/campaigns/", campaigns.CampaignListView.as_view(), name="api-training-campaigns"),
    path("projects/<slug:slug>/campaigns/", campaigns.ProjectCampaignsView.as_view(), name="api-project-campaigns"),
    path(
        "training/campaigns/<uuid:campaign_id>/", campaigns.CampaignDetailView.as_view(), name="api-training-campaign"
    ),  # fmt: skip
    path(
        "training/campaigns/<uuid:campaign_id>/resume/",
        campaigns.CampaignResumeView.as_view(),
        name="api-training-campaign-resume",
    ),  # fmt: skip
    path(
        "training/campaigns/<uuid:campaign_id>/cancel/",
        campaigns.CampaignCancelView.as_view(),
        name="api-training-campaign-cancel",
    ),  # fmt: skip
    path("training/sweeps/", sweeps.SweepListView.as_view(), name="api-training-sweeps"),
    path("training/sweeps/<uuid:sweep_id>/", sweeps.SweepDetailView.as_view(), name="api-training-sweep"),
    path(
        "training/sweeps/<uuid:sweep_id>/progress/",
        sweeps.SweepProgressView.as_view(),
        name="api-training-sweep-progress",
    ),
    path("training/sweeps/<uuid:sweep_id>/cancel/", sweeps.SweepCancelView.as_view(), name="api-training-sweep-cancel"),
    path(
        "training/sweeps/<uuid:sweep_id>/promote/", sweeps.SweepPromoteView.as_view(), name="api-training-sweep-promote"
    ),
    path(
        "training/jobs/<uuid:job_id>/evaluations/",
        evaluations.JobEvaluationsView.as_view(),
        name="api-training-evaluations",
    ),
    path(
        "training/evaluations/<uuid:evaluation_id>/",
        evaluations.EvaluationDetailView.as_view(),
        name="api-training-evaluation",
    ),
    # before the actions: "progress" is not one
    path(
        "training/evaluations/<uuid:evaluation_id>/progress/",
        evaluations.EvaluationProgressView.as_view(),
        name="api-training-evaluation-progress",
    ),
    path(
        "training/evaluations/<uuid:evaluation_id>/<str:action>/",
        evaluations.EvaluationActionView.as_view(),
        name="api-training-evaluation-action",
    ),
]
