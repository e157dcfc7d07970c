"""Volumes, SSH keys, security groups and floating IPs."""
from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from instances import selectors, services
from instances.forms import SecurityGroupForm, SSHKeyForm, VolumeAttachForm, VolumeCreateForm
from instances.models import Volume
from instances.services import network_admin

from ..common import (
    AllocationRegionQuery,
    Cursor,
    OptionalAllocationQuery,
    allocation_for,
    body,
    idempotent,
    limit_to_token,
    query,
    reachable,
    region_of,
    with_etag,
)
from ..schema import IF_NONE_MATCH, problems
from ..serializers import (
    ActionSerializer,
    FloatingIPInputSerializer,
    FloatingIPSerializer,
    SecurityGroupInputSerializer,
    SecurityGroupSerializer,
    SSHKeySerializer,
    VolumeActionInputSerializer,
    VolumeInputSerializer,
    VolumeSerializer,
)
from .base import ApiView, accepted, form_or_400


def _volume(request, pk: int) -> Volume:
    volume = reachable(request, selectors.volume_get_for_user(user=request.user, pk=pk), "volume")
    if volume.deleted_at:  # gone from Cinder, as from the list
        raise Http404("No such volume.")
    return volume


def _valid(serializer_class, request) -> dict:
    data = serializer_class(data=body(request))
    data.is_valid(raise_exception=True)
    return data.validated_data


class VolumeList(ApiView):
    pagination_class = Cursor

    @extend_schema(operation_id="volumes_list", responses=VolumeSerializer(many=True),
                   parameters=[OptionalAllocationQuery, IF_NONE_MATCH])
    @problems(404)
    def get(self, request):
        q = query(request, OptionalAllocationQuery)
        allocation = allocation_for(request, q["allocation"]) if "allocation" in q else None
        qs = selectors.volume_list_for_user(user=request.user, allocation=allocation)
        paginator = Cursor()
        page = paginator.paginate_queryset(limit_to_token(request, qs).order_by("-id"), request, view=self)
        return with_etag(request, paginator.get_paginated_response(VolumeSerializer(page, many=True).data))

    @extend_schema(operation_id="volumes_create", request=VolumeInputSerializer, responses={202: ActionSerializer})
    @problems(404, 409, cloud=True)
    @idempotent
    def post(self, request):
        d = _valid(VolumeInputSerializer, request)
        allocation = allocation_for(request, d["allocation"])
        region = region_of(allocation, d["region"])
        cleaned = form_or_400(VolumeCreateForm(d, **selectors.volume_form_kwargs(user=request.user,
                                                                                 allocation=allocation, region=region)))
        row = services.volume_create_request(user=request.user, allocation=allocation, name=cleaned["name"],
                                             size_gb=cleaned["size_gb"], snapshot_id=cleaned["snapshot_id"],
                                             image_id=cleaned["image_id"], region=region)
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class VolumeDetail(ApiView):
    @extend_schema(operation_id="volumes_retrieve", responses=VolumeSerializer)
    @problems(404)
    def get(self, request, pk: int):
        return Response(VolumeSerializer(_volume(request, pk)).data)

    @extend_schema(operation_id="volumes_delete", request=None, responses={202: ActionSerializer})
    @problems(404, 409)
    @idempotent
    def delete(self, request, pk: int):
        row = services.volume_act(user=request.user, volume=_volume(request, pk), action="delete")
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class VolumeActions(ApiView):
    @extend_schema(operation_id="volumes_act", request=VolumeActionInputSerializer, responses={202: ActionSerializer})
    @problems(404, 409)
    @idempotent
    def post(self, request, pk: int):
        volume = _volume(request, pk)
        d = _valid(VolumeActionInputSerializer, request)
        params = {}
        if d["action"] == "attach":
            # The page's own form: only a live instance of the volume's project can take it.
            instances = selectors.instance_list_for_user(user=request.user, allocation=volume.allocation,
                                                         region=volume.region)
            params["server_id"] = form_or_400(VolumeAttachForm(d, instances=instances))["server_id"]
        elif d["action"] == "extend":
            params["size_gb"] = d["size_gb"]
        elif d["action"] == "snapshot":
            params["name"] = d["name"]
        row = services.volume_act(user=request.user, volume=volume, action=d["action"], params=params)
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class KeyList(ApiView):
    @extend_schema(operation_id="keys_list", parameters=[IF_NONE_MATCH], responses=SSHKeySerializer(many=True))
    def get(self, request):
        return with_etag(request, Response(SSHKeySerializer(selectors.ssh_key_list_for_user(user=request.user),
                                                            many=True).data))

    @extend_schema(operation_id="keys_create", request=SSHKeySerializer, responses={201: SSHKeySerializer})
    @idempotent
    def post(self, request):
        cleaned = form_or_400(SSHKeyForm(_valid(SSHKeySerializer, request)))
        key = services.ssh_key_create(user=request.user, name=cleaned["name"], public_key=cleaned["public_key"])
        return Response(SSHKeySerializer(key).data, status=status.HTTP_201_CREATED)


class KeyDetail(ApiView):
    @extend_schema(operation_id="keys_delete", request=None, responses={204: None})
    @problems(404, cloud=True)
    def delete(self, request, pk: int):
        services.ssh_key_delete(key=selectors.ssh_key_get_for_user(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _allocation_and_region(request):
    """The allocation (`allocation`) and region (`region`, one it is enabled in; 400 else) a network
    call's query names: groups and public IPs live in one region's Neutron."""
    asked = query(request, AllocationRegionQuery)
    allocation = allocation_for(request, asked["allocation"])
    return allocation, region_of(allocation, asked["region"])


class SecurityGroupList(ApiView):
    @extend_schema(operation_id="security_groups_list", parameters=[AllocationRegionQuery, IF_NONE_MATCH],
                   responses=SecurityGroupSerializer(many=True))
    @problems(404, cloud=True)
    def get(self, request):
        allocation, region = _allocation_and_region(request)
        groups = selectors.security_group_list(user=request.user, allocation=allocation, region=region)
        return with_etag(request, Response(SecurityGroupSerializer(groups, many=True).data))

    @extend_schema(operation_id="security_groups_create", parameters=[AllocationRegionQuery],
                   request=SecurityGroupInputSerializer, responses={201: SecurityGroupSerializer})
    @problems(404, 409, cloud=True)
    @idempotent
    def post(self, request):
        allocation, region = _allocation_and_region(request)
        cleaned = form_or_400(SecurityGroupForm(_valid(SecurityGroupInputSerializer, request)))
        group = network_admin.security_group_create(user=request.user, allocation=allocation, region=region,
                                                    **cleaned)
        return Response(SecurityGroupSerializer(group).data, status=status.HTTP_201_CREATED)


class SecurityGroupDetail(ApiView):
    @extend_schema(operation_id="security_groups_delete", parameters=[AllocationRegionQuery], request=None,
                   responses={204: None})
    @problems(404, 409, cloud=True)
    def delete(self, request, group_id: str):
        allocation, region = _allocation_and_region(request)
        network_admin.security_group_delete(user=request.user, allocation=allocation, group_id=group_id,
                                            region=region)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FloatingIPList(ApiView):
    @extend_schema(operation_id="floating_ips_list", parameters=[AllocationRegionQuery, IF_NONE_MATCH],
                   responses=FloatingIPSerializer(many=True))
    @problems(404, cloud=True)
    def get(self, request):
        allocation, region = _allocation_and_region(request)
        ips = selectors.floating_ip_list(user=request.user, allocation=allocation, region=region)
        return with_etag(request, Response(FloatingIPSerializer(ips, many=True).data))

    @extend_schema(operation_id="floating_ips_create", request=FloatingIPInputSerializer,
                   responses={201: FloatingIPSerializer})
    @problems(404, 409, cloud=True)
    @idempotent
    def post(self, request):
        data = _valid(FloatingIPInputSerializer, request)
        allocation = allocation_for(request, data["allocation"])
        ip = network_admin.floating_ip_allocate(user=request.user, allocation=allocation,
                                                region=region_of(allocation, data["region"]))
        return Response(FloatingIPSerializer(ip).data, status=status.HTTP_201_CREATED)


class FloatingIPDetail(ApiView):
    @extend_schema(operation_id="floating_ips_delete", parameters=[AllocationRegionQuery], request=None,
                   responses={204: None})
    @problems(404, 409, cloud=True)
    def delete(self, request, ip_id: str):
        allocation, region = _allocation_and_region(request)
        network_admin.floating_ip_release(user=request.user, allocation=allocation, floating_ip_id=ip_id,
                                          region=region)
        return Response(status=status.HTTP_204_NO_CONTENT)
