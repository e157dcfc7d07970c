"""The OpenAPI schema says everything a client can get back: every error as problem details
(`application/problem+json`, one `Problem` component), the `Idempotency-Key` and `If-None-Match`
headers, `Location` on 202, and ids that are positive 64-bit integers.

Views say which errors are theirs with `@problems(404, 409, ...)`; every operation also documents
401, 403 and 429 (and 400 when it takes parameters or a body)."""
from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from .common import MAX_ID

PROBLEM_MEDIA_TYPE = "application/problem+json"
CLOUD_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # Neutron ids are UUIDs

TITLES = {
    400: "The request is not valid (malformed JSON, a bad parameter, or field errors in `errors`)",
    401: "No token, or one that is unknown, expired or revoked",
    402: "The allocation's balance cannot carry this; `shortfall_sus` says by how much",
    403: "The token is read-only, or the allocation cannot act now",
    404: "No such thing, or not one this token may reach",
    409: "Conflicts with the current state (an action that does not apply now, one already running, quota, "
         "no capacity)",
    415: "The body is not JSON",
    422: "This Idempotency-Key was used for a different request",
    429: "Too many requests for this token; retry after `Retry-After` seconds",
    502: "The cloud refused the request",
    503: "The cloud is not answering",
}

IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", str, OpenApiParameter.HEADER, required=False,
    description="An ETag from an earlier answer; 304 without a body if nothing changed.")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Any unique string (a UUID). A retry with the same key and body gets the first answer "
                   "again (`Idempotent-Replayed: true`) instead of doing the work twice; kept 24 hours.",
}


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details."""

    type = serializers.CharField(help_text="A URI reference naming the kind of problem, e.g. "
                                           "`/api/problems/insufficient-balance`; act on this.")
    title = serializers.CharField(help_text="The kind of problem in words.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="This occurrence in words, for a person.")
    errors = serializers.DictField(required=False, child=serializers.JSONField(),
                                   help_text="400: the fields and their messages.")
    shortfall_sus = serializers.CharField(required=False, help_text="402: how many SUs the allocation is short "
                                                                    "(a decimal number, as a string).")
    cloud_request_id = serializers.CharField(required=False, allow_null=True,
                                             help_text="502: the cloud's request id, for the support team.")


def problems(*codes: int, cloud: bool = False):
    """Document these error statuses for a view method (`cloud`: it calls the cloud: 502, 503)."""
    def mark(method):
        method.problems = frozenset(codes) | ({502, 503} if cloud else frozenset())
        return method
    return mark


class ApiAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        handler = getattr(self.view, method.lower(), None)
        parameters = operation.setdefault("parameters", [])
        for parameter in parameters:
            if parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
                parameter["schema"].update(minimum=1, maximum=MAX_ID)
            elif parameter["in"] == "path":
                parameter["schema"]["pattern"] = CLOUD_ID_PATTERN
        codes = {401, 403, 429} | set(getattr(handler, "problems", ()))
        if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
            codes.add(400)
        if "requestBody" in operation:
            codes.add(415)
        if getattr(handler, "idempotent", False):
            parameters.append(dict(IDEMPOTENCY_KEY))
            codes |= {400, 422}
        if not parameters:
            del operation["parameters"]
        responses = operation["responses"]
        for code, response in responses.items():
            if code == "202":
                response["headers"] = {"Location": {
                    "required": True, "schema": {"type": "string"},
                    "description": "The status resource to poll until its `state` is final."}}
        if any(p["in"] == "header" and p["name"] == "If-None-Match" for p in parameters):
            responses["200"].setdefault("headers", {})["ETag"] = {
                "required": True, "schema": {"type": "string"}, "description": "Send it back as If-None-Match."}
            responses["304"] = {"description": "Not modified since the ETag sent in If-None-Match."}
        for code in sorted(codes):
            responses[str(code)] = self._problem_response(code)
        return operation

    def _problem_response(self, code: int) -> dict:
        response = self._get_response_for_code(ProblemSerializer, str(code), media_types=[PROBLEM_MEDIA_TYPE])
        response["description"] = TITLES[code]
        if code == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": False}}
        return response
