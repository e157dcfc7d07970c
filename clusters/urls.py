from django.urls import path

from . import views

app_name = "clusters"

urlpatterns = [
    path("clusters/", views.cluster_list, name="list"),
    path("clusters/new/", views.cluster_create, name="create"),
    path("clusters/new/cost/", views.cluster_cost, name="cost"),
    path("clusters/<int:pk>/", views.cluster_detail, name="detail"),
    path("clusters/<int:pk>/max-workers/", views.cluster_max_workers, name="max_workers"),
    path("clusters/<int:pk>/delete/", views.cluster_delete, name="delete"),
]
