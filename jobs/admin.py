from django.contrib import admin

from jobs.models import Job, JobItem


class JobItemInline(admin.TabularInline):
    model = JobItem
    extra = 0
    fields = ["position", "filename", "status", "error", "attempts", "started_at", "finished_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "created_by", "lab_unit", "rejected_count", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["id", "created_by__username"]
    list_select_related = ["created_by", "lab_unit__hospital"]
    readonly_fields = ["id", "created_at", "started_at", "finished_at"]
    inlines = [JobItemInline]
