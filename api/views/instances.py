"""Instances: the list (same filters as the page), detail, launch, every action, delete; and the
launch/action status resources a client polls."""
from __future__ import annotations

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from instances import selectors, services
from instances.forms import LaunchForm

from ..common import (
    AllocationQuery,
    Cursor,
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
    ActionInputSerializer,
    ActionSerializer,
    FlavorSerializer,
    ImageSerializer,
    InstanceQuerySerializer,
    InstanceSerializer,
    LaunchInputSerializer,
    LaunchSerializer,
)
from .base import ApiView, accepted, form_or_400


def _instance(request, pk: int):
    instance = reachable(request, selectors.instance_get_for_user(user=request.user, pk=pk), "instance")
    if instance.deleted_at:  # gone from Nova, as from the list: 404 as Nova answers
        raise Http404("No such instance.")
    return instance


class InstanceList(ApiView):
    pagination_class = Cursor

    @extend_schema(operation_id="instances_list", responses=InstanceSerializer(many=True),
                   parameters=[InstanceQuerySerializer, IF_NONE_MATCH])
    @problems(404)
    def get(self, request):
        q = query(request, InstanceQuerySerializer)
        allocation = allocation_for(request, q["allocation"]) if "allocation" in q else None
        qs = selectors.instance_list_for_user(user=request.user, allocation=allocation, mine=q["mine"],
                                              search=q["q"].strip())
        qs = limit_to_token(request, qs)
        if q.get("status"):
            qs = qs.filter(status=q["status"].upper())
        paginator = Cursor()
        page = paginator.paginate_queryset(qs.order_by("-id"), request, view=self)
        return with_etag(request, paginator.get_paginated_response(InstanceSerializer(page, many=True).data))

    @extend_schema(operation_id="instances_launch", request=LaunchInputSerializer, responses={202: LaunchSerializer})
    @problems(402, 404, 409, cloud=True)
    @idempotent
    def post(self, request):
        data = LaunchInputSerializer(data=body(request))
        data.is_valid(raise_exception=True)
        d = data.validated_data
        allocation = allocation_for(request, d["allocation"])
        region = region_of(allocation, d["region"])
        # The page's own form, with the same choices and quota: a rule lives once.
        form = LaunchForm({**d, "ssh_key": str(d["ssh_key"] or ""), "root_disk_gb": d["root_disk_gb"] or ""},
                          **selectors.launch_form_kwargs(user=request.user, allocation=allocation, region=region))
        form_or_400(form)
        row = services.instance_launch_from_form(user=request.user, allocation=allocation, form=form)
        return accepted(LaunchSerializer(row).data, reverse("api:launch-detail", args=[row.pk]))


class InstanceDetail(ApiView):
    @extend_schema(operation_id="instances_retrieve", responses=InstanceSerializer)
    @problems(404)
    def get(self, request, pk: int):
        return Response(InstanceSerializer(_instance(request, pk)).data)

    @extend_schema(operation_id="instances_delete", request=None, responses={202: ActionSerializer})
    @problems(404, 409)
    @idempotent
    def delete(self, request, pk: int):
        row = services.instance_act(user=request.user, instance=_instance(request, pk), action="delete")
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class InstanceActions(ApiView):
    @extend_schema(operation_id="instances_act", request=ActionInputSerializer, responses={202: ActionSerializer})
    @problems(402, 404, 409, cloud=True)
    @idempotent
    def post(self, request, pk: int):
        instance = _instance(request, pk)
        data = ActionInputSerializer(data=body(request))
        data.is_valid(raise_exception=True)
        d = data.validated_data
        params = {}
        if d["action"] == "resize":
            params["flavor_id"] = d["flavor_id"]
        elif d["action"] == "image_create":
            params["name"] = d["name"] or f"{instance.name}-image"
        row = services.instance_act(user=request.user, instance=instance, action=d["action"], params=params)
        return accepted(ActionSerializer(row).data, reverse("api:action-detail", args=[row.pk]))


class LaunchDetail(ApiView):
    @extend_schema(operation_id="launches_retrieve", responses=LaunchSerializer)
    @problems(404)
    def get(self, request, pk: int):
        row = reachable(request, selectors.launch_get_for_user(user=request.user, pk=pk), "launch")
        return Response(LaunchSerializer(row).data)


class ActionDetail(ApiView):
    @extend_schema(operation_id="actions_retrieve", responses=ActionSerializer)
    @problems(404)
    def get(self, request, pk: int):
        row = reachable(request, selectors.action_get_for_user(user=request.user, pk=pk), "action")
        return Response(ActionSerializer(row).data)


class FlavorList(ApiView):
    @extend_schema(operation_id="flavors_list", parameters=[AllocationQuery, IF_NONE_MATCH],
                   responses=FlavorSerializer(many=True))
    @problems(404, cloud=True)
    def get(self, request):
        allocation = allocation_for(request, query(request, AllocationQuery)["allocation"])
        flavors = selectors.flavor_list_for(user=request.user, allocation=allocation)
        return with_etag(request, Response(FlavorSerializer(flavors, many=True).data))


class ImageList(ApiView):
    @extend_schema(operation_id="images_list", parameters=[AllocationQuery, IF_NONE_MATCH],
                   responses=ImageSerializer(many=True))
    @problems(404, cloud=True)
    def get(self, request):
        allocation = allocation_for(request, query(request, AllocationQuery)["allocation"])
        images = selectors.launch_options(user=request.user, allocation=allocation)["images"]
        return with_etag(request, Response(ImageSerializer(images, many=True).data))
