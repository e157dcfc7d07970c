from django.urls import path

from . import views, views_resources

app_name = "instances"

urlpatterns = [
    path("instances/", views.instance_list, name="list"),
    path("instances/rows/", views.instance_rows, name="rows"),
    path("instances/launch/", views.instance_launch, name="launch"),
    path("instances/launch/cost/", views.launch_cost, name="launch_cost"),
    path("instances/launches/<int:pk>/", views.launch_detail, name="launch_detail"),
    path("instances/<int:pk>/", views.instance_detail, name="detail"),
    path("instances/<int:pk>/act/<str:action>/", views.instance_act, name="act"),
    path("instances/<int:pk>/console/", views.instance_console, name="console"),
    path("instances/<int:pk>/console-log/", views.instance_console_log, name="console_log"),
    path("volumes/", views_resources.volume_list, name="volumes"),
    path("volumes/create/", views_resources.volume_create, name="volume_create"),
    path("volumes/<int:pk>/act/<str:action>/", views_resources.volume_act, name="volume_act"),
    path("keys/", views_resources.key_list, name="keys"),
    path("keys/<int:pk>/delete/", views_resources.key_delete, name="key_delete"),
    path("security-groups/", views_resources.security_group_list, name="security_groups"),
    path("security-groups/<str:group_id>/delete/", views_resources.security_group_delete, name="security_group_delete"),
    path("floating-ips/", views_resources.floating_ip_list, name="floating_ips"),
    path("floating-ips/<str:ip_id>/delete/", views_resources.floating_ip_delete, name="floating_ip_delete"),
    path("volumes/actions/<int:pk>/dismiss/", views_resources.volume_action_dismiss, name="volume_action_dismiss"),
    path("keys/download/<slug:token>/", views_resources.key_download, name="key_download"),
    path("security-groups/<str:group_id>/rules/", views_resources.security_group_rule_add,
         name="security_group_rule_add"),
    path("security-groups/<str:group_id>/rules/<str:rule_id>/delete/", views_resources.security_group_rule_delete,
         name="security_group_rule_delete"),
    # the instance page: resize confirm step, attach a volume, graphical console; a launch's failed step again
    path("instances/<int:pk>/resize/", views.instance_resize, name="resize"),
    path("instances/<int:pk>/attach-volume/", views.instance_attach_volume, name="attach_volume"),
    path("instances/<int:pk>/console/vnc/", views.instance_console_vnc, name="console_vnc"),
    path("instances/launches/<int:pk>/retry/", views.launch_retry, name="launch_retry"),
    path("instances/actions/<int:pk>/dismiss/", views.action_dismiss, name="action_dismiss"),
]
