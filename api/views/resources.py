"""Volumes, SSH keys, security groups and floating IPs."""
from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from instances import selectors, services
from instances.forms import SecurityGroupForm, SSHKeyForm, VolumeCreateForm
from instances.models import Volume
from instances.services import network_admin

from ..common import Cursor, allocation_for, idempotent, limit_to_token, with_etag
from ..serializers import (ActionSerializer, AllocationRefSerializer, FloatingIPSerializer, SecurityGroupSerializer,
                           SSHKeySerializer, VolumeActionInputSerializer, VolumeInputSerializer, VolumeSerializer)
from .base import ApiView, accepted, form_or_400

ALLOCATION = OpenApiParameter("allocation", int, required=True, description="The allocation's id")


def _volume(request, pk: int) -> Volume:
    volume = selectors.volume_get_for_user(user=request.user, pk=pk)
    if limit_to_token(request, Volume.objects.filter(pk=volume.pk)).first() is None:
        raise Http404("No such volume.")
    return volume


class VolumeList(ApiView):
    pagination_class = Cursor

    @extend_schema(operation_id="volumes_list", responses=VolumeSerializer(many=True),
                   parameters=[OpenApiParameter("allocation", int)])
    def get(self, request):
        pk = request.query_params.get("allocation")
        qs = selectors.volume_list_for_user(user=request.user, allocation=allocation_for(request, pk) if pk else None)
        paginator = Cursor()
        page = paginator.paginate_queryset(limit_to_token(request, qs).order_by("-id"), request, view=self)
        return with_etag(request, paginator.get_paginated_response(VolumeSerializer(page, many=True).data))

    @extend_schema(operation_id="volumes_create", request=VolumeInputSerializer, responses={202: ActionSerializer})
    @idempotent
    def post(self, request):
        data = VolumeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        allocation = allocation_for(request, data.validated_data["allocation"])
        options = selectors.volume_create_options(user=request.user, allocation=allocation)
        cleaned = form_or_400(VolumeCreateForm(data.validated_data, **options))
        row = services.volume_create_request(user=request.user, allocation=allocation, name=cleaned["name"],
                                             size_gb=cleaned["size_gb"], snapshot_id=cleaned["snapshot_id"],
                                             image_id=cleaned["image_id"])
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class VolumeDetail(ApiView):
    @extend_schema(operation_id="volumes_retrieve", responses=VolumeSerializer)
    def get(self, request, pk: int):
        return Response(VolumeSerializer(_volume(request, pk)).data)

    @extend_schema(operation_id="volumes_delete", request=None, responses={202: ActionSerializer})
    @idempotent
    def delete(self, request, pk: int):
        row = services.volume_act(user=request.user, volume=_volume(request, pk), action="delete")
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class VolumeActions(ApiView):
    @extend_schema(operation_id="volumes_act", request=VolumeActionInputSerializer, responses={202: ActionSerializer})
    @idempotent
    def post(self, request, pk: int):
        data = VolumeActionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        volume = _volume(request, pk)
        params = {}
        if d["action"] == "attach":
            instances = selectors.instance_list_for_user(user=request.user, allocation=volume.allocation)
            if not instances.filter(server_id=d["server_id"]).exists():
                raise Http404("No such instance in the volume's project.")
            params["server_id"] = d["server_id"]
        elif d["action"] == "extend":
            params["size_gb"] = d["size_gb"]
        elif d["action"] == "snapshot":
            params["name"] = d["name"]
        row = services.volume_act(user=request.user, volume=volume, action=d["action"], params=params)
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class KeyList(ApiView):
    @extend_schema(operation_id="keys_list", responses=SSHKeySerializer(many=True))
    def get(self, request):
        return with_etag(request, Response(SSHKeySerializer(selectors.ssh_key_list_for_user(user=request.user),
                                                            many=True).data))

    @extend_schema(operation_id="keys_create", request=SSHKeySerializer, responses={201: SSHKeySerializer})
    @idempotent
    def post(self, request):
        cleaned = form_or_400(SSHKeyForm(request.data))
        key = services.ssh_key_create(user=request.user, name=cleaned["name"], public_key=cleaned["public_key"])
        return Response(SSHKeySerializer(key).data, status=status.HTTP_201_CREATED)


class KeyDetail(ApiView):
    @extend_schema(operation_id="keys_delete", request=None, responses={204: None})
    def delete(self, request, pk: int):
        services.ssh_key_delete(key=selectors.ssh_key_get_for_user(user=request.user, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecurityGroupList(ApiView):
    @extend_schema(operation_id="security_groups_list", parameters=[ALLOCATION],
                   responses=SecurityGroupSerializer(many=True))
    def get(self, request):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        groups = selectors.security_group_list(user=request.user, allocation=allocation)
        return with_etag(request, Response(SecurityGroupSerializer(groups, many=True).data))

    @extend_schema(operation_id="security_groups_create", parameters=[ALLOCATION], request=SecurityGroupSerializer,
                   responses={201: SecurityGroupSerializer})
    @idempotent
    def post(self, request):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        cleaned = form_or_400(SecurityGroupForm({"allow_ssh": True, "allow_icmp": True, **request.data}))
        group = network_admin.security_group_create(user=request.user, allocation=allocation, **cleaned)
        return Response(SecurityGroupSerializer(group).data, status=status.HTTP_201_CREATED)


class SecurityGroupDetail(ApiView):
    @extend_schema(operation_id="security_groups_delete", parameters=[ALLOCATION], request=None,
                   responses={204: None})
    def delete(self, request, group_id: str):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        network_admin.security_group_delete(user=request.user, allocation=allocation, group_id=group_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FloatingIPList(ApiView):
    @extend_schema(operation_id="floating_ips_list", parameters=[ALLOCATION], responses=FloatingIPSerializer(many=True))
    def get(self, request):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        ips = selectors.floating_ip_list(user=request.user, allocation=allocation)
        return with_etag(request, Response(FloatingIPSerializer(ips, many=True).data))

    @extend_schema(operation_id="floating_ips_create", request=AllocationRefSerializer,
                   responses={201: FloatingIPSerializer})
    @idempotent
    def post(self, request):
        data = AllocationRefSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        allocation = allocation_for(request, data.validated_data["allocation"])
        ip = network_admin.floating_ip_allocate(user=request.user, allocation=allocation)
        return Response(FloatingIPSerializer(ip).data, status=status.HTTP_201_CREATED)


class FloatingIPDetail(ApiView):
    @extend_schema(operation_id="floating_ips_delete", parameters=[ALLOCATION], request=None, responses={204: None})
    def delete(self, request, ip_id: str):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        network_admin.floating_ip_release(user=request.user, allocation=allocation, floating_ip_id=ip_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
