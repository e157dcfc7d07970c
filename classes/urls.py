from django.urls import path

from . import views

app_name = "classes"

urlpatterns = [
    path("classes/", views.course_list, name="list"),
    path("classes/new/", views.course_create, name="create"),
    path("classes/<int:pk>/", views.course_detail, name="detail"),
    path("classes/<int:pk>/launch/", views.course_launch, name="launch"),
]
