from django.urls import path

from . import views

app_name = "stacks"

urlpatterns = [
    path("stacks/", views.stack_list, name="list"),
    path("stacks/new/", views.stack_create, name="create"),
    path("stacks/new/cost/", views.stack_cost, name="cost"),
    path("stacks/<int:pk>/", views.stack_detail, name="detail"),
    path("stacks/<int:pk>/delete/", views.stack_delete, name="delete"),
]
