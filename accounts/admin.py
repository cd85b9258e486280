from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import Area, Camera, Disease, Hospital, LabUnit, User, UserRole


class UserRoleInline(admin.TabularInline):
    model = UserRole
    extra = 1


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [UserRoleInline]
    list_display = ["username", "email", "is_active", "is_superuser", "upload_count", "upload_quota"]
    filter_horizontal = ["lab_units", "groups", "user_permissions"]
    fieldsets = [
        *BaseUserAdmin.fieldsets,
        ("Reading center", {"fields": ["lab_units", "upload_quota", "upload_count"]}),
    ]


class LabUnitInline(admin.TabularInline):
    model = LabUnit
    extra = 0


@admin.register(Hospital)
class HospitalAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]
    inlines = [LabUnitInline]


@admin.register(LabUnit)
class LabUnitAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "hospital"]
    list_filter = ["hospital"]
    search_fields = ["code", "name"]
    list_select_related = ["hospital"]


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "manufacturer"]


@admin.register(Disease)
class DiseaseAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]


@admin.register(Area)
class AreaAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
