from django.contrib.auth.decorators import login_not_required
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView

from clusters import api as clusters_api

from . import views_pages
from .views import allocations, instances, resources
from .views.base import NotFoundView

app_name = "api"

urlpatterns = [
    # The schema and its docs are public: a gateway author reads them before signing up.
    path("api/schema/", login_not_required(SpectacularAPIView.as_view()), name="schema"),
    path("api/docs/", login_not_required(views_pages.api_docs), name="docs"),
    path("tokens/", views_pages.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", views_pages.token_revoke, name="token_revoke"),
    path("api/v1/allocations/", allocations.AllocationList.as_view(), name="allocation-list"),
    path("api/v1/allocations/<int:pk>/", allocations.AllocationDetail.as_view(), name="allocation-detail"),
    path("api/v1/allocations/<int:pk>/ledger/", allocations.LedgerList.as_view(), name="allocation-ledger"),
    path("api/v1/allocations/<int:pk>/members/", allocations.MemberList.as_view(), name="allocation-members"),
    path("api/v1/flavors/", instances.FlavorList.as_view(), name="flavor-list"),
    path("api/v1/images/", instances.ImageList.as_view(), name="image-list"),
    path("api/v1/instances/", instances.InstanceList.as_view(), name="instance-list"),
    path("api/v1/instances/<int:pk>/", instances.InstanceDetail.as_view(), name="instance-detail"),
    path("api/v1/instances/<int:pk>/actions/", instances.InstanceActions.as_view(), name="instance-actions"),
    path("api/v1/launches/<int:pk>/", instances.LaunchDetail.as_view(), name="launch-detail"),
    path("api/v1/actions/<int:pk>/", instances.ActionDetail.as_view(), name="action-detail"),
    path("api/v1/volumes/", resources.VolumeList.as_view(), name="volume-list"),
    path("api/v1/volumes/<int:pk>/", resources.VolumeDetail.as_view(), name="volume-detail"),
    path("api/v1/volumes/<int:pk>/actions/", resources.VolumeActions.as_view(), name="volume-actions"),
    path("api/v1/keys/", resources.KeyList.as_view(), name="key-list"),
    path("api/v1/keys/<int:pk>/", resources.KeyDetail.as_view(), name="key-detail"),
    path("api/v1/security-groups/", resources.SecurityGroupList.as_view(), name="security-group-list"),
    path("api/v1/security-groups/<str:group_id>/", resources.SecurityGroupDetail.as_view(),
         name="security-group-detail"),
    path("api/v1/floating-ips/", resources.FloatingIPList.as_view(), name="floating-ip-list"),
    path("api/v1/floating-ips/<str:ip_id>/", resources.FloatingIPDetail.as_view(), name="floating-ip-detail"),
    # A cluster head's own calls (clusters/api.py), with its cluster token only.
    path("api/v1/clusters/<int:pk>/nodes/<str:name>/resume/", clusters_api.NodeResume.as_view(),
         name="cluster-node-resume"),
    path("api/v1/clusters/<int:pk>/nodes/<str:name>/suspend/", clusters_api.NodeSuspend.as_view(),
         name="cluster-node-suspend"),
    path("api/v1/clusters/<int:pk>/report/", clusters_api.Report.as_view(), name="cluster-report"),
    # Last: any other API URL (a negative or non-numeric id, a typo) is a 404 problem, not a page.
    re_path(r"^api/v1/", NotFoundView.as_view(), name="not-found"),
]
