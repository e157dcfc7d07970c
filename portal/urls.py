from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from . import views
from .observability import views as observability_views

admin.site.site_header = "Research Cloud administration"
admin.site.site_title = "Research Cloud admin"
# Admins sign in on allauth's page like everyone else, so its rate limits (and SSO, email
# verification) apply to them too; Django's own admin login form would be a second, unthrottled
# place to guess passwords. /admin/login/ now only sends anonymous visitors there.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", observability_views.metrics, name="metrics"),
    path("", include("instances.urls")),
    path("accounts/", include("allauth.urls")),
    path("", include("allocations.urls")),
    path("", include("clusters.urls")),
    path("", include("classes.urls")),
    path("", include("stacks.urls")),
    path("", include("api.urls")),
    path("admin/", admin.site.urls),
]
