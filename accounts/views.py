from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from rest_framework.authtoken.models import Token

from accounts import access
from jobs.selectors import recent_jobs


@login_required
def home(request):
    return render(
        request,
        "accounts/home.html",
        {"recent": recent_jobs(request.user, limit=5), "lab_units": access.lab_units(request.user)},
    )


@login_required
def api_token(request):
    """Show (and on POST rotate) the user's API token."""
    token = None
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        token = Token.objects.create(user=request.user)
    else:
        token = Token.objects.filter(user=request.user).first()
    return render(request, "accounts/api_token.html", {"token": token})
