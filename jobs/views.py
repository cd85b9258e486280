from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from jobs import selectors


@login_required
def processing(request, job_id):
    job = selectors.job_get(request.user, job_id)
    return render(request, "jobs/processing.html", {"job": job, "status": selectors.job_status(job)})


@login_required
def results(request, job_id):
    job = selectors.job_get(request.user, job_id)
    status = selectors.job_status(job)
    return render(
        request,
        "jobs/results.html",
        {
            "job": job,
            "status": status,
            "succeeded": [item for item in status["items"] if item["status"] == "completed"],
            "failures": [item for item in status["items"] if item["status"] == "error"],
        },
    )


@login_required
def recent(request):
    return render(request, "jobs/recent.html", {"jobs": selectors.recent_jobs(request.user)})
