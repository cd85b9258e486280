from django.conf import settings

from accounts import access, navigation


def access_context(request) -> dict:
    user = request.user
    if not user.is_authenticated:
        return {}
    can = {action: access.can(user, action) for action in access.ACTIONS}
    return {
        "user_roles": access.role_labels(access.roles_of(user)),
        "can": can,
        "is_admin": access.is_admin(user),
        "nav_upload": navigation.entries_for(user, "upload", can),
        "nav_main": navigation.entries_for(user, "main", can),
        "home_cards": navigation.entries_for(user, "home", can),
        "settings_max_mb": settings.DIRECT_UPLOAD_MAX_FILE_SIZE_MB,
    }
