"""What a locked-out login attempt gets (django-axes' AXES_LOCKOUT_CALLABLE): a 429 with a JSON
detail on the API, the login form again with a message in a browser (the admin's own form for the
admin login). Either way nothing says whether the password was right."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import JsonResponse
from django.shortcuts import render

STATUS = 429


def message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (f"too many failed logins from this address or for this username: try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}")


def lockout_response(request, original_response=None, credentials=None):
    path = request.path
    if path.startswith("/api/"):
        response = JsonResponse({"detail": message()}, status=STATUS)
        response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
        return response
    form = AuthenticationForm(request)
    form.errors.setdefault("__all__", form.error_class()).append(message())
    if path.startswith("/admin/"):
        from django.contrib import admin
        context = {**admin.site.each_context(request), "form": form, "title": "Log in",
                   "app_path": path, "username": ""}
        return render(request, "admin/login.html", context, status=STATUS)
    return render(request, "registration/login.html",
                  {"form": form, "lockout": message(), "next": request.GET.get("next", "")}, status=STATUS)
