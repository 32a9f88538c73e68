"""API parity as data: for every page route, the API routes that do the same thing (same service, same access
helper), or the reason it has none. tests/security/test_api_parity.py walks the URL tree and fails when a page is in
neither, or when a page takes an action (POST) that none of its API routes can (POST, PUT, PATCH or DELETE), or shows
something (GET) that none of them returns. Methods come from tests/security/permission_matrix.py.

Adding a page: add its API counterpart (and both to the permission matrix), then a line here.
"""

API_FOR_PAGE = {
    # projects, people, guidelines, settings
    "annotation:project_list": ("api-projects",),
    "annotation:project_new": ("api-projects",),
    "annotation:project_detail": ("api-project", "api-progress"),
    "annotation:project_settings": ("api-project",),
    "annotation:guidelines": ("api-guidelines",),
    "annotation:members": ("api-members", "api-member"),
    "annotation:member_remove": ("api-member",),
    "annotation:member_reinstate": ("api-member-reinstate",),
    "annotation:quality": ("api-quality",),
    # pairs, calibration, imports
    "annotation:pairs": ("api-pairs",),
    "annotation:pair_detail": ("api-pair", "api-pair-calibration"),
    "annotation:imports": ("api-imports",),
    "annotation:import_detail": ("api-import",),
    # labelling
    "annotation:annotate": ("api-next", "api-progress"),
    "annotation:annotate_next": ("api-next",),
    "annotation:annotate_submit": ("api-label",),
    "annotation:annotate_skip": ("api-skip",),
    # judges, scorers, runs, composites
    "judging:judges": ("api-judges", "api-judge-runs"),
    "judging:judge_new": ("api-judges",),
    "judging:judge_edit": ("api-judge",),
    "judging:reward_model_new": ("api-judges",),
    "judging:judge_audit": ("api-judge-audit",),
    "judging:run_detail": ("api-judge-run", "api-judge-run-verdicts"),
    "judging:run_action": ("api-judge-run-action",),
    "judging:composites": ("api-composites",),
    "judging:composite_new": ("api-composites",),
    "judging:composite_detail": ("api-composite", "api-composite-scores"),
    "judging:composite_edit": ("api-composite",),
    "judging:composite_compute": ("api-composite-compute",),
    # generation
    "generation:home": ("api-prompt-sets", "api-generators", "api-generation-runs"),
    "generation:generator_new": ("api-generators",),
    "generation:generator_edit": ("api-generator",),
    "generation:run_detail": ("api-generation-run",),
    "generation:run_action": ("api-generation-run-action",),
    "generation:prompt_set": ("api-prompt-set", "api-prompt-set-candidates", "api-prompt-set-pairs"),
    "generation:kto_download": ("api-prompt-set-kto",),
    "generation:rating_open": ("api-prompt-set-rating",),
    "generation:candidate_gold": ("api-candidate-gold",),
    # curation and exports
    "training:start": ("api-pipeline",),
    "training:curation": ("api-recipes", "api-recipe-preview"),
    "training:export_new": ("api-exports",),
    "training:export_detail": ("api-export", "api-export-push"),
    "training:export_download": ("api-export-file",),
    "training:export_push": ("api-export-push",),
    # training
    "training:jobs": ("api-training-jobs",),
    "training:job_detail": ("api-training-job",),
    "training:job_progress": ("api-training-progress",),
    "training:job_cancel": ("api-training-cancel",),
    "training:job_generator": ("api-training-generator",),
    "training:job_reward_model": ("api-training-reward-model",),
    "training:job_download": ("api-training-job-file",),
    "training:evaluation_new": ("api-training-evaluations",),
    "training:evaluation_detail": ("api-training-evaluation",),
    "training:evaluation_progress": ("api-training-evaluation-progress",),
    "training:evaluation_action": ("api-training-evaluation-action",),
    "training:sweeps": ("api-training-sweeps",),
    "training:sweep_detail": ("api-training-sweep",),
    "training:sweep_progress": ("api-training-sweep-progress",),
    "training:sweep_promote": ("api-training-sweep-promote",),
    "training:sweep_cancel": ("api-training-sweep-cancel",),
    "training:campaigns": ("api-training-campaigns", "api-project-campaigns"),
    "training:campaign_detail": ("api-training-campaign",),
    "training:campaign_progress": ("api-training-campaign",),
    "training:campaign_resume": ("api-training-campaign-resume",),
    "training:campaign_cancel": ("api-training-campaign-cancel",),
}

# Pages with no API counterpart, each with the reason.
PAGE_ONLY = {
    "annotation:pygments_css": "A stylesheet for the pages' code blocks: nothing to script.",
    "generation:rate": "The annotators' page for rating candidates one at a time: a person's task, not a lead's "
    "or admin's action; leads get ratings by running a judge over the candidates or importing them.",
    "generation:rate_submit": "An annotator's rating of one candidate, from the page above (same reason).",
}
