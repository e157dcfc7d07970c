from django.urls import path

from . import views

app_name = "classes"

urlpatterns = [
    path("classes/", views.course_list, name="list"),
    path("classes/mine/", views.my_machines, name="mine"),
    path("classes/mine/<int:pk>/<str:action>/", views.seat_act, name="seat_act"),
    path("classes/new/", views.course_create, name="create"),
    path("classes/<int:pk>/", views.course_detail, name="detail"),
    path("classes/<int:pk>/launch/", views.course_launch, name="launch"),
    path("classes/<int:pk>/act/", views.course_act, name="act"),
    path("classes/<int:pk>/roster/", views.course_roster_add, name="roster_add"),
    path("classes/<int:pk>/extend/", views.course_extend, name="extend"),
    path("classes/<int:pk>/instructors/", views.course_instructor_add, name="instructor_add"),
    path("classes/<int:pk>/instructors/<int:user_id>/remove/", views.course_instructor_remove,
         name="instructor_remove"),
]
