from .models import Operation


def operation_list_recent(*, user, limit: int = 10) -> list[Operation]:
    return list(Operation.objects.filter(requested_by=user).order_by("-created_at")[:limit])
