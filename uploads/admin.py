from django.contrib import admin

from accounts import access
from uploads.models import AuditEvent, Image


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "original_name",
        "lab_unit",
        "disease",
        "source",
        "is_pregraded",
        "uploaded_by",
        "uploaded_at",
    ]
    list_filter = ["source", "is_pregraded", "disease", "lab_unit__hospital"]
    search_fields = ["id", "original_name", "md5"]
    list_select_related = ["lab_unit__hospital", "disease", "uploaded_by"]
    readonly_fields = [
        "id",
        "md5",
        "size",
        "mime",
        "width",
        "height",
        "uploaded_at",
        "client_ip",
        "user_agent",
        "job_item",
    ]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Search the audit trail: by user name, object id (an image's UUID), IP address, action or text of the summary.

    Read-only for everyone, including superusers: the trail is never edited or pruned from the product.
    """

    list_display = ["created_at", "action", "actor_username", "object_type", "object_id", "ip", "summary"]
    list_filter = ["action", "object_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_username", "=object_id", "=ip", "action", "summary"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    list_per_page = 100
    # Counting every row of a large trail on each search is slow and not needed to browse it.
    show_full_result_count = False
    fields = [
        "created_at",
        "action",
        "actor_username",
        "actor",
        "ip",
        "user_agent",
        "object_type",
        "object_id",
        "lab_unit",
        "summary",
        "details",
    ]
    readonly_fields = fields

    def has_module_permission(self, request) -> bool:
        return access.can(request.user, "view_audit")

    def has_view_permission(self, request, obj=None) -> bool:
        return access.can(request.user, "view_audit")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
