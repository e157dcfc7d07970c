"""Instances: the list (same filters as the page), detail, launch, every action, delete; and the
launch/action status resources a client polls."""
from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from instances import selectors, services
from instances.forms import LaunchForm
from instances.models import CloudAction, LaunchRequest

from ..common import Cursor, allocation_for, idempotent, limit_to_token, with_etag
from ..serializers import (ActionInputSerializer, ActionSerializer, FlavorSerializer, ImageSerializer,
                           InstanceSerializer, LaunchInputSerializer, LaunchSerializer)
from .base import ApiView, accepted, form_or_400

ALLOCATION = OpenApiParameter("allocation", int, required=True, description="The allocation's id")


def _instance(request, pk: int):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    if limit_to_token(request, type(instance).objects.filter(pk=instance.pk)).first() is None:
        raise Http404("No such instance.")
    return instance


class InstanceList(ApiView):
    pagination_class = Cursor

    @extend_schema(operation_id="instances_list", responses=InstanceSerializer(many=True), parameters=[
        OpenApiParameter("allocation", int), OpenApiParameter("mine", bool), OpenApiParameter("q", str),
        OpenApiParameter("status", str)])
    def get(self, request):
        pk = request.query_params.get("allocation")
        allocation = allocation_for(request, pk) if pk else None
        qs = selectors.instance_list_for_user(user=request.user, allocation=allocation,
                                              mine=request.query_params.get("mine") in ("1", "true"),
                                              search=request.query_params.get("q", "").strip()[:100])
        qs = limit_to_token(request, qs)
        if status := request.query_params.get("status"):
            qs = qs.filter(status=status.upper())
        paginator = Cursor()
        page = paginator.paginate_queryset(qs.order_by("-id"), request, view=self)
        return with_etag(request, paginator.get_paginated_response(InstanceSerializer(page, many=True).data))

    @extend_schema(operation_id="instances_launch", request=LaunchInputSerializer, responses={202: LaunchSerializer})
    @idempotent
    def post(self, request):
        data = LaunchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        allocation = allocation_for(request, d["allocation"])
        keys = list(selectors.ssh_key_list_for_user(user=request.user))
        options = selectors.launch_options(user=request.user, allocation=allocation)
        volumes = selectors.volume_list_for_user(user=request.user, allocation=allocation).filter(
            status="available", is_bootable=True)
        form = LaunchForm({**d, "ssh_key": str(d["ssh_key"] or ""), "root_disk_gb": d["root_disk_gb"] or ""},
                          options=options, keys=keys, volumes=volumes)
        cleaned = form_or_400(form)
        row = services.instance_launch(
            user=request.user, allocation=allocation, flavor=form.chosen_flavor, image_id=cleaned["image"],
            image_name=form.chosen_image.name if form.chosen_image else "", name=cleaned["name"],
            count=cleaned["count"], boot_volume_gb=cleaned["root_disk_gb"], boot_volume_id=cleaned["boot_volume"],
            ssh_key=next((k for k in keys if str(k.pk) == cleaned["ssh_key"]), None),
            security_groups=cleaned["security_groups"], network_id=cleaned["network"],
            user_data=cleaned["user_data"], assign_floating_ip=cleaned["assign_floating_ip"])
        return accepted(LaunchSerializer(row).data, reverse("api:launch-detail", args=[row.pk]))


class InstanceDetail(ApiView):
    @extend_schema(operation_id="instances_retrieve", responses=InstanceSerializer)
    def get(self, request, pk: int):
        return Response(InstanceSerializer(_instance(request, pk)).data)

    @extend_schema(operation_id="instances_delete", request=None, responses={202: ActionSerializer})
    @idempotent
    def delete(self, request, pk: int):
        row = services.instance_act(user=request.user, instance=_instance(request, pk), action="delete")
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class InstanceActions(ApiView):
    @extend_schema(operation_id="instances_act", request=ActionInputSerializer, responses={202: ActionSerializer})
    @idempotent
    def post(self, request, pk: int):
        data = ActionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        instance = _instance(request, pk)
        params = {}
        if d["action"] == "resize":
            params["flavor_id"] = d["flavor_id"]
        elif d["action"] == "image_create":
            params["name"] = d["name"] or f"{instance.name}-image"
        row = services.instance_act(user=request.user, instance=instance, action=d["action"], params=params)
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class LaunchDetail(ApiView):
    @extend_schema(operation_id="launches_retrieve", responses=LaunchSerializer)
    def get(self, request, pk: int):
        row = selectors.launch_get_for_user(user=request.user, pk=pk)
        if limit_to_token(request, LaunchRequest.objects.filter(pk=row.pk)).first() is None:
            raise Http404("No such launch.")
        return Response(LaunchSerializer(row).data)


class ActionDetail(ApiView):
    @extend_schema(operation_id="actions_retrieve", responses=ActionSerializer)
    def get(self, request, pk: int):
        row = selectors.action_get_for_user(user=request.user, pk=pk)
        if limit_to_token(request, CloudAction.objects.filter(pk=row.pk)).first() is None:
            raise Http404("No such action.")
        return Response(ActionSerializer(row).data)


class FlavorList(ApiView):
    @extend_schema(operation_id="flavors_list", parameters=[ALLOCATION], responses=FlavorSerializer(many=True))
    def get(self, request):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        flavors = selectors.flavor_list_for(user=request.user, allocation=allocation)
        return with_etag(request, Response(FlavorSerializer(flavors, many=True).data))


class ImageList(ApiView):
    @extend_schema(operation_id="images_list", parameters=[ALLOCATION], responses=ImageSerializer(many=True))
    def get(self, request):
        allocation = allocation_for(request, request.query_params.get("allocation"))
        images = selectors.launch_options(user=request.user, allocation=allocation)["images"]
        return with_etag(request, Response(ImageSerializer(images, many=True).data))
