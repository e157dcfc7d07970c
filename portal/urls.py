from django.contrib import admin
from django.urls import include, path

from . import views

admin.site.site_header = "Research Cloud administration"
admin.site.site_title = "Research Cloud admin"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("", include("instances.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("allocations.urls")),
    path("admin/", admin.site.urls),
]
