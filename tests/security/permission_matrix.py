"""Authorization as data: for every named route, who may use it. tests/security/test_permission_matrix.py turns each
(route, method, role) into a test and fails when a route exists that is neither here nor in EXEMPT.

The app's rule: a logged-in user who may not use a route gets 404 — the same answer as for a missing object, so ids
cannot be probed. Anonymous users are sent to the login page (pages) or get 401 (API: TokenAuthentication comes first
in DEFAULT_AUTHENTICATION_CLASSES, so DRF answers 401 with a ``WWW-Authenticate: Token`` header).

Adding a view: add a Route below (name, the URL kwargs it takes from the test world, its methods, who may use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Roles. Each is a different user in the test world (tests/security/test_permission_matrix.py builds it).
ANONYMOUS = "anonymous"  # not logged in
OUTSIDER = "outsider"  # logged in, member of nothing
OTHER_ANNOTATOR = "other_annotator"  # annotator of another project
OTHER_LEAD = "other_lead"  # lead of another project
ANNOTATOR = "annotator"  # annotator of the project
LEAD = "lead"  # lead of the project
ADMIN = "admin"  # is_staff, member of nothing (admins are leads everywhere)

LOGGED_IN = (OUTSIDER, OTHER_ANNOTATOR, OTHER_LEAD, ANNOTATOR, LEAD, ADMIN)
ROLES = (ANONYMOUS, *LOGGED_IN)

EVERYONE = frozenset(LOGGED_IN)  # any logged-in user (the answer is scoped to what they may see)
MEMBERS = frozenset({ANNOTATOR, LEAD, ADMIN})
LEADS = frozenset({LEAD, ADMIN})
ADMINS = frozenset({ADMIN})
# An assignment belongs to its annotator alone: nobody else may see or answer it, leads and admins included.
ASSIGNEE = frozenset({ANNOTATOR})

# What an allowed role may get back. GET must succeed; a POST (or PATCH) need only get past authorization (the matrix
# sends bodies that are cheap to handle, often deliberately incomplete, so 400 and a form re-rendered with 200 count).
GET_OK = frozenset({200})
POST_OK = frozenset({200, 201, 202, 204, 302, 400})


@dataclass(frozen=True)
class Route:
    name: str  # as given to reverse(): "namespace:name" or "api-..."
    allowed: frozenset[str]
    methods: tuple[str, ...] = ("GET",)
    # URL kwargs taken from the world by name (slug, batch_id, pair_id, assignment_id, user_id, judge_id, run_id,
    # recipe_id, export_id, job_id, prompt_set_id, generator_id, generation_run_id, candidate_id, evaluation_id,
    # sweep_id, campaign_id, composite_id),
    # plus literal ones.
    kwargs: tuple[str, ...] = ()
    fixed: dict = field(default_factory=dict)
    # POST body: form fields for pages; JSON for the API and for the annotation page's submit/skip endpoints.
    body: dict = field(default_factory=dict)
    json: bool = False
    # What a logged-in role outside ``allowed`` gets. 404 everywhere except creating a project, which is a global
    # permission (user.has_perm("annotation.add_project")) with no object to hide: PermissionDenied, 403.
    denied_status: int = 404

    @property
    def api(self) -> bool:
        return self.name.startswith("api-")

    @property
    def sends_json(self) -> bool:
        return self.api or self.json


P = ("slug",)

ROUTES: tuple[Route, ...] = (
    # annotation: pages
    Route("api_token", EVERYONE, ("GET", "POST")),  # the caller's own token, nobody else's
    Route("annotation:project_list", EVERYONE),
    Route("annotation:project_new", ADMINS, ("GET", "POST"), denied_status=403),
    Route("annotation:project_detail", MEMBERS, kwargs=P),
    Route("annotation:project_settings", LEADS, ("GET", "POST"), P),
    Route("annotation:guidelines", LEADS, ("GET", "POST"), P),
    Route("annotation:members", LEADS, ("GET", "POST"), P),
    Route("annotation:member_remove", LEADS, ("POST",), (*P, "user_id")),
    Route("annotation:member_reinstate", LEADS, ("POST",), (*P, "user_id")),
    Route("annotation:quality", LEADS, kwargs=P),
    Route("annotation:pairs", LEADS, kwargs=P),
    Route("annotation:pair_detail", LEADS, ("GET", "POST"), (*P, "pair_id")),
    Route("annotation:imports", LEADS, ("GET", "POST"), P),
    Route("annotation:import_detail", LEADS, kwargs=(*P, "batch_id")),
    Route("annotation:annotate", MEMBERS, kwargs=P),
    Route("annotation:annotate_next", MEMBERS, ("POST",), P),
    Route("annotation:annotate_submit", ASSIGNEE, ("POST",), (*P, "assignment_id"), body={"choice": "left"}, json=True),
    Route("annotation:annotate_skip", ASSIGNEE, ("POST",), (*P, "assignment_id"), json=True),
    # annotation: API
    Route("api-projects", EVERYONE, ("GET",)),
    Route("api-projects", ADMINS, ("POST",), denied_status=403),
    Route("api-project", MEMBERS, kwargs=P),
    Route("api-project", LEADS, ("PATCH",), P, body={"description": "changed by the matrix"}),
    Route("api-progress", MEMBERS, kwargs=P),
    Route("api-quality", LEADS, kwargs=P),
    Route("api-imports", LEADS, ("POST",), P),
    Route("api-import", LEADS, kwargs=(*P, "batch_id")),
    Route("api-next", MEMBERS, ("POST",), P),
    Route("api-label", ASSIGNEE, ("POST",), (*P, "assignment_id"), body={"choice": "left"}),
    Route("api-skip", ASSIGNEE, ("POST",), (*P, "assignment_id")),
    # annotation: API parity with the lead's pages (issue 21); user_id is the second annotator, pair_id the gold pair
    Route("api-imports", LEADS, ("GET",), P),
    Route("api-members", LEADS, ("GET", "POST"), P),
    Route("api-member", LEADS, ("PATCH", "DELETE"), (*P, "user_id"), body={"role": "annotator"}),
    Route("api-member-reinstate", LEADS, ("POST",), (*P, "user_id")),
    Route("api-guidelines", LEADS, ("GET", "POST"), P),
    Route("api-pairs", LEADS, kwargs=P),
    Route("api-pair", LEADS, kwargs=(*P, "pair_id")),
    Route("api-pair-calibration", LEADS, ("PUT", "DELETE"), (*P, "pair_id"), body={"gold": "A"}),
    Route("api-labels", LEADS, kwargs=P),
    # judging: pages
    Route("judging:judges", LEADS, ("GET", "POST"), P),
    Route("judging:judge_new", LEADS, ("GET", "POST"), P),
    Route("judging:judge_edit", LEADS, ("GET", "POST"), (*P, "judge_id")),
    Route("judging:reward_model_new", LEADS, ("GET", "POST"), P),
    Route("judging:judge_audit", LEADS, kwargs=(*P, "judge_id")),
    Route("judging:run_detail", LEADS, kwargs=(*P, "run_id")),
    # pause: the one action that never queues a task (resume would send one to the broker)
    Route("judging:run_action", LEADS, ("POST",), (*P, "run_id"), fixed={"action": "pause"}),
    # judging: API
    Route("api-judges", LEADS, ("GET", "POST"), P),
    Route("api-judge-audit", LEADS, kwargs=(*P, "judge_id")),
    Route("api-judge-runs", LEADS, ("GET", "POST"), P),
    Route("api-judge-run", LEADS, kwargs=(*P, "run_id")),
    Route("api-judge-run-action", LEADS, ("POST",), (*P, "run_id"), fixed={"action": "pause"}),
    # judging: composites (stacked scorers per axis), pages and API
    Route("judging:composites", LEADS, kwargs=P),
    Route("judging:composite_new", LEADS, ("GET", "POST"), P),
    Route("judging:composite_detail", LEADS, kwargs=(*P, "composite_id")),
    Route("judging:composite_edit", LEADS, ("GET", "POST"), (*P, "composite_id")),
    Route("judging:composite_compute", LEADS, ("POST",), (*P, "composite_id")),
    Route("api-composites", LEADS, ("GET", "POST"), P),
    Route("api-composite", LEADS, kwargs=(*P, "composite_id")),
    Route("api-composite-compute", LEADS, ("POST",), (*P, "composite_id")),
    Route("api-composite-scores", LEADS, kwargs=(*P, "composite_id")),
    # generation: pages
    Route("generation:home", LEADS, ("GET", "POST"), P),
    Route("generation:generator_new", LEADS, ("GET", "POST"), P),
    Route("generation:generator_edit", LEADS, ("GET", "POST"), (*P, "generator_id")),
    Route("generation:run_detail", LEADS, kwargs=(*P, "generation_run_id")),
    Route("generation:run_action", LEADS, ("POST",), (*P, "generation_run_id"), fixed={"action": "pause"}),
    Route("generation:prompt_set", LEADS, ("GET", "POST"), (*P, "prompt_set_id")),
    Route("generation:kto_download", LEADS, kwargs=(*P, "prompt_set_id")),
    Route("generation:rating_open", LEADS, ("POST",), (*P, "prompt_set_id")),
    Route("generation:candidate_gold", LEADS, ("POST",), (*P, "candidate_id")),
    # rating single candidates: every member, blinded (a candidate of an open set only)
    Route("generation:rate", MEMBERS, kwargs=P),
    Route("generation:rate_submit", MEMBERS, ("POST",), (*P, "candidate_id"), body={"choice": "skip"}),
    # generation: API
    Route("api-prompt-sets", LEADS, ("GET", "POST"), P),
    Route("api-prompt-set", LEADS, kwargs=(*P, "prompt_set_id")),
    Route("api-prompt-set-candidates", LEADS, kwargs=(*P, "prompt_set_id")),
    Route("api-prompt-set-pairs", LEADS, ("POST",), (*P, "prompt_set_id")),
    Route("api-prompt-set-kto", LEADS, kwargs=(*P, "prompt_set_id")),
    Route("api-generators", LEADS, ("GET", "POST"), P),
    Route("api-generation-runs", LEADS, ("GET", "POST"), P),
    Route("api-generation-run", LEADS, kwargs=(*P, "generation_run_id")),
    Route("api-generation-run-action", LEADS, ("POST",), (*P, "generation_run_id"), fixed={"action": "pause"}),
    # training: curation and exports (leads), pages
    Route("training:start", LEADS, kwargs=P),
    Route("training:curation", LEADS, ("GET", "POST"), P),
    Route("training:export_new", LEADS, ("POST",), (*P, "recipe_id")),
    Route("training:export_detail", LEADS, kwargs=(*P, "export_id")),
    Route("training:export_download", LEADS, kwargs=(*P, "export_id"), fixed={"name": "train.jsonl"}),
    # training: jobs (admins only), pages
    Route("training:jobs", ADMINS, ("GET", "POST")),
    Route("training:job_detail", ADMINS, kwargs=("job_id",)),
    Route("training:job_progress", ADMINS, kwargs=("job_id",)),
    Route("training:job_cancel", ADMINS, ("POST",), ("job_id",)),
    Route("training:job_generator", ADMINS, ("POST",), ("job_id",)),
    Route("training:job_reward_model", ADMINS, ("POST",), ("job_id",)),
    Route("training:job_download", ADMINS, kwargs=("job_id",), fixed={"name": "README.md"}),
    Route("training:evaluation_new", ADMINS, ("POST",), ("job_id",)),
    Route("training:evaluation_detail", ADMINS, kwargs=("evaluation_id",)),
    Route("training:evaluation_progress", ADMINS, kwargs=("evaluation_id",)),
    Route("training:evaluation_action", ADMINS, ("POST",), ("evaluation_id",), fixed={"action": "refresh"}),
    Route("training:sweeps", ADMINS, ("GET", "POST")),
    Route("training:sweep_detail", ADMINS, kwargs=("sweep_id",)),
    Route("training:sweep_progress", ADMINS, kwargs=("sweep_id",)),
    Route("training:sweep_promote", ADMINS, ("POST",), ("sweep_id",)),
    Route("training:sweep_cancel", ADMINS, ("POST",), ("sweep_id",)),
    # campaigns: admins launch, resume and cancel; a project's leads follow theirs (the list: any lead, scoped)
    Route("training:campaigns", frozenset({LEAD, OTHER_LEAD, ADMIN})),
    Route("training:campaigns", ADMINS, ("POST",)),
    Route("training:campaign_detail", LEADS, kwargs=("campaign_id",)),
    Route("training:campaign_progress", LEADS, kwargs=("campaign_id",)),
    Route("training:campaign_resume", ADMINS, ("POST",), ("campaign_id",)),
    Route("training:campaign_cancel", ADMINS, ("POST",), ("campaign_id",)),
    # training: API
    Route("api-recipes", LEADS, ("GET", "POST"), P),
    Route("api-recipe-preview", LEADS, ("POST",), P),
    Route("api-exports", LEADS, ("GET", "POST"), P),
    Route("api-export", LEADS, kwargs=(*P, "export_id")),
    # API parity (issue 21): what the judging, generation and training pages do, as API routes. PATCH {} changes
    # nothing; the POSTs send incomplete bodies (400), so nothing is queued or pushed.
    Route("api-judge", LEADS, ("GET", "PATCH"), (*P, "judge_id")),
    Route("api-judge-run-verdicts", LEADS, kwargs=(*P, "run_id")),
    Route("api-composite", LEADS, ("PATCH",), (*P, "composite_id")),
    Route("api-generator", LEADS, ("GET", "PATCH"), (*P, "generator_id")),
    Route("api-prompt-set-rating", LEADS, ("GET", "POST"), (*P, "prompt_set_id")),
    Route("api-candidate-gold", LEADS, ("POST",), (*P, "candidate_id")),
    Route("api-pipeline", LEADS, kwargs=P),
    Route("api-export-file", LEADS, kwargs=(*P, "export_id"), fixed={"name": "train.jsonl"}),
    Route("api-export-push", LEADS, ("GET", "POST"), (*P, "export_id")),
    Route("training:export_push", LEADS, ("POST",), (*P, "export_id")),
    Route("api-training-job-files", ADMINS, kwargs=("job_id",)),
    Route("api-training-job-file", ADMINS, kwargs=("job_id",), fixed={"name": "README.md"}),
    Route("api-training-sweep-progress", ADMINS, kwargs=("sweep_id",)),
    Route("api-training-evaluation-progress", ADMINS, kwargs=("evaluation_id",)),
    Route("api-training-jobs", ADMINS, ("GET", "POST")),
    Route("api-training-job", ADMINS, kwargs=("job_id",)),
    Route("api-training-progress", ADMINS, kwargs=("job_id",)),
    Route("api-training-cancel", ADMINS, ("POST",), ("job_id",)),
    Route("api-training-generator", ADMINS, ("POST",), ("job_id",)),
    Route("api-training-reward-model", ADMINS, ("POST",), ("job_id",)),
    Route("api-training-evaluations", ADMINS, ("GET", "POST"), ("job_id",)),
    Route("api-training-evaluation", ADMINS, kwargs=("evaluation_id",)),
    Route("api-training-evaluation-action", ADMINS, ("POST",), ("evaluation_id",), fixed={"action": "refresh"}),
    Route("api-training-sweeps", ADMINS, ("GET", "POST")),
    Route("api-training-sweep", ADMINS, kwargs=("sweep_id",)),
    Route("api-training-sweep-promote", ADMINS, ("POST",), ("sweep_id",)),
    Route("api-training-sweep-cancel", ADMINS, ("POST",), ("sweep_id",)),
    Route("api-training-campaigns", EVERYONE),
    Route("api-project-campaigns", LEADS, kwargs=P),
    Route("api-project-campaigns", ADMINS, ("POST",), P),
    Route("api-training-campaign", LEADS, kwargs=("campaign_id",)),
    Route("api-training-campaign-resume", ADMINS, ("POST",), ("campaign_id",)),
    Route("api-training-campaign-cancel", ADMINS, ("POST",), ("campaign_id",)),
)

# Routes outside the matrix, each with the reason. Anything else without a Route fails the completeness test.
EXEMPT_NAMESPACES = {
    "admin": "Django admin: staff only, with its own permission system and login.",
}
EXEMPT = {
    "login": "The login page: public by design.",
    "logout": "Logging out: POST only, acts on the caller's own session.",
    "healthz": "Load balancer health check: public, answers ok/error per component and nothing else.",
    "api-schema": "The OpenAPI schema: describes endpoints, holds no data.",
    "api-docs": "Swagger UI over the schema: holds no data.",
    "annotation:pygments_css": "A static stylesheet generated from Pygments: public, holds no data.",
}
# URL prefixes served outside the app's views (the development server's static files).
EXEMPT_PREFIXES = ("static/", "media/")
