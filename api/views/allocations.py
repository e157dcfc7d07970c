"""Allocations: list, detail with balance, burn rate and run-out date, ledger, members."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from allocations import selectors

from ..common import Cursor, allocation_for, allocations_for, with_etag
from ..schema import IF_NONE_MATCH, problems
from ..serializers import AllocationSerializer, LedgerEntrySerializer, MemberSerializer
from .base import ApiView


class AllocationList(ApiView):
    @extend_schema(operation_id="allocations_list", parameters=[IF_NONE_MATCH],
                   responses=AllocationSerializer(many=True))
    def get(self, request):
        allocations = list(allocations_for(request))
        summaries = selectors.allocation_summaries(allocations=allocations)
        data = AllocationSerializer(allocations, many=True, context={"summaries": summaries}).data
        return with_etag(request, Response(data))


class AllocationDetail(ApiView):
    @extend_schema(operation_id="allocations_retrieve", responses=AllocationSerializer)
    @problems(404)
    def get(self, request, pk: int):
        allocation = allocation_for(request, pk)
        summaries = {allocation.pk: selectors.allocation_summary(allocation=allocation)}
        return Response(AllocationSerializer(allocation, context={"summaries": summaries}).data)


class LedgerList(ApiView):
    pagination_class = Cursor

    @extend_schema(operation_id="allocations_ledger_list", responses=LedgerEntrySerializer(many=True))
    @problems(404)
    def get(self, request, pk: int):
        allocation = allocation_for(request, pk)
        paginator = Cursor()
        page = paginator.paginate_queryset(selectors.ledger_page(allocation=allocation).order_by("-id"), request,
                                           view=self)
        return paginator.get_paginated_response(LedgerEntrySerializer(page, many=True).data)


class MemberList(ApiView):
    @extend_schema(operation_id="allocations_members_list", responses=MemberSerializer(many=True))
    @problems(404)
    def get(self, request, pk: int):
        allocation = allocation_for(request, pk)
        rows = [r for r in selectors.allocation_member_usage(allocation=allocation) if r["membership"]]
        data = [{"user": r["user"], "role": r["membership"].role, "sus": r["sus"]} for r in rows]
        return Response(MemberSerializer(data, many=True).data)
