"""The API a cluster's head node calls: resume and suspend a worker, report sinfo/squeue.

The head authenticates with its own token (`Bearer rcc_…`, written to a 0400 file owned by slurm),
which reaches only its own cluster's routes; its requests act as the cluster's creator, like their
own launches. A personal token or a session gets the same 404 as an unknown cluster: these routes
are the head's alone.
"""
from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, serializers, status
from rest_framework.response import Response

from api.authentication import BearerTokenAuthentication
from api.common import body
from api.problems import Problem
from api.schema import problems
from api.views.base import ApiView

from . import services
from .models import Cluster, ClusterNode


@dataclass(frozen=True)
class ClusterToken:
    cluster: Cluster


class ClusterTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer rcc_…`: a cluster head's token. Other tokens are left to the next class."""

    def authenticate(self, request):
        kind, _, raw = authentication.get_authorization_header(request).decode(errors="replace").partition(" ")
        raw = raw.strip()
        if kind.lower() != "bearer" or not raw.startswith(f"{services.TOKEN_PREFIX}_"):
            return None
        cluster = services.cluster_for_token(raw)
        if cluster is None or cluster.created_by is None or not cluster.created_by.is_active:
            raise exceptions.AuthenticationFailed("The cluster token is unknown, or its cluster was deleted.")
        return cluster.created_by, ClusterToken(cluster)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ClusterTokenScheme(OpenApiAuthenticationExtension):
    target_class = ClusterTokenAuthentication
    name = "clusterToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A cluster head's own token (`rcc_…`), written by the portal to the head node."}


class NodeSerializer(serializers.ModelSerializer):
    # Plain strings in the schema: "state" enums of other resources already take that name.
    role = serializers.CharField(read_only=True, help_text="head or worker")
    state = serializers.CharField(read_only=True, help_text="powered_down, building, active, deleting, refused, failed")

    class Meta:
        model = ClusterNode
        fields = ["name", "role", "state", "server_id", "slurm_state", "reason"]


class ReportNodeSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=16)
    state = serializers.CharField(max_length=64, allow_blank=True)
    reason = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")


class ReportJobSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=32)
    state = serializers.CharField(max_length=32)
    user = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")
    name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    nodes = serializers.CharField(max_length=16, allow_blank=True, required=False, default="")


class ReportSerializer(serializers.Serializer):
    nodes = ReportNodeSerializer(many=True, max_length=500)
    jobs = ReportJobSerializer(many=True, max_length=5000)


class ClusterView(ApiView):
    authentication_classes = [ClusterTokenAuthentication, BearerTokenAuthentication,
                              authentication.SessionAuthentication]

    def cluster(self, request, pk: int) -> Cluster:
        """The token's own cluster; 404 for any other (the same as for one that does not exist)."""
        auth = request.auth
        if not isinstance(auth, ClusterToken) or auth.cluster.pk != pk:
            raise exceptions.NotFound("No such cluster.")
        return auth.cluster


def _refused(exc: services.ClusterRefused) -> Problem:
    if exc.status == 404:
        return Problem(404, "not-found", "Not found", str(exc))
    title = "The allocation cannot carry this worker" if exc.status == 402 else "The worker cannot start now"
    return Problem(exc.status, "resume-refused", title, str(exc))


class NodeResume(ClusterView):
    @extend_schema(operation_id="cluster_nodes_resume", request=None, responses={202: NodeSerializer})
    @problems(402, 404, 409)
    def post(self, request, pk: int, name: str):
        cluster = self.cluster(request, pk)
        try:
            node = services.node_resume(cluster=cluster, name=name)
        except services.ClusterRefused as exc:
            raise _refused(exc) from None
        return Response(NodeSerializer(node).data, status=status.HTTP_202_ACCEPTED)


class NodeSuspend(ClusterView):
    @extend_schema(operation_id="cluster_nodes_suspend", request=None, responses={202: NodeSerializer})
    @problems(404)
    def post(self, request, pk: int, name: str):
        cluster = self.cluster(request, pk)
        try:
            node = services.node_suspend(cluster=cluster, name=name)
        except services.ClusterRefused as exc:
            raise _refused(exc) from None
        return Response(NodeSerializer(node).data, status=status.HTTP_202_ACCEPTED)


class ReportAnswerSerializer(serializers.Serializer):
    partition = serializers.CharField(help_text="The partition the portal's workers are in.")
    partition_nodes = serializers.CharField(help_text="Its nodes as a Slurm host list: the cluster's max workers.")
    resume = serializers.ListField(child=serializers.CharField(), help_text=(
        "Nodes held DOWN after a refused resume that Slurm may use again (`scontrol update state=resume`)."))
    power_down = serializers.ListField(child=serializers.CharField(), help_text=(
        "Nodes whose server was deleted outside the cluster (`scontrol update state=power_down_force`)."))


class Report(ClusterView):
    @extend_schema(operation_id="cluster_report", request=ReportSerializer, responses={200: ReportAnswerSerializer})
    @problems(404)
    def post(self, request, pk: int):
        cluster = self.cluster(request, pk)
        data = ReportSerializer(data=body(request))
        data.is_valid(raise_exception=True)
        answer = services.cluster_report(cluster=cluster, nodes=data.validated_data["nodes"],
                                         jobs=data.validated_data["jobs"])
        return Response(ReportAnswerSerializer(answer).data)
