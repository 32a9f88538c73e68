from django.contrib import admin

from .models import Assignment, GuidelineVersion, ImportBatch, Label, Membership, Pair, Project
from .services.project_delete import project_delete


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "overlap_k", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    # Deletion is set-based (annotation.services.project_delete): the default collector cannot delete a project of
    # more than ~65k pairs on PostgreSQL.
    def delete_model(self, request, obj):
        project_delete(project=obj)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            project_delete(project=project)


@admin.register(Pair)
class PairAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "external_id", "label_count", "open_slots", "created_at"]
    list_filter = ["project"]
    search_fields = ["external_id", "content_hash"]
    readonly_fields = ["content_hash", "shuffle_key", "open_slots", "label_count"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["public_id", "project", "annotator", "state", "served_at", "expires_at"]
    list_filter = ["state", "kind", "project"]
    raw_id_fields = ["pair", "annotator"]


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "annotator", "external_annotator", "choice", "created_at"]
    list_filter = ["source", "choice", "project"]
    raw_id_fields = ["pair", "assignment", "annotator"]


admin.site.register(GuidelineVersion)
admin.site.register(ImportBatch)
