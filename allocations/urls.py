from django.urls import path

from . import views

app_name = "allocations"
urlpatterns = [
    path("allocations/", views.allocation_list, name="list"),
    path("allocations/request/", views.allocation_request, name="request"),
    path("allocations/<int:pk>/", views.allocation_detail, name="detail"),
    path("allocations/<int:pk>/quota/", views.allocation_quota, name="quota"),
    path("allocations/<int:pk>/members/", views.member_add, name="member_add"),
    path("allocations/<int:pk>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("allocations/<int:pk>/invitations/<int:invitation_id>/revoke/", views.invitation_revoke,
         name="invitation_revoke"),
    path("invitations/<slug:token>/", views.invitation_open, name="invitation_open"),
    path("credentials/", views.credential_list, name="credentials"),
    path("credentials/<int:pk>/delete/", views.credential_delete, name="credential_delete"),
    path("credentials/download/<slug:token>/", views.credential_download, name="credential_download"),
]
