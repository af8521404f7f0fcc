"""What a bench is made from and how much a user may hold: the image and plan a create names (or
the defaults), and the resource quotas (vCPUs, memory, disk) beside the bench count."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Sum

from accounts.models import User
from devbench_site.errors import InvalidInput

from ..models import DevBench, Image, Plan


@dataclass(frozen=True)
class Resources:
    """vCPUs, memory (MiB) and disk (GiB); ``None`` in a limit means no limit."""

    vcpus: int | None
    memory_mib: int | None
    disk_gib: int | None

    @classmethod
    def of_plan(cls, plan: Plan | None) -> Resources:
        if plan is None:
            return cls(0, 0, 0)
        return cls(plan.vcpus, plan.memory_mib, plan.disk_gib)


RESOURCE_UNITS = (("vcpus", "vCPUs"), ("memory_mib", "MiB of memory"), ("disk_gib", "GiB of disk"))


def quota_for(user: User) -> int:
    """How many benches the user may hold at once."""
    return user.bench_quota if user.bench_quota is not None else settings.DEVBENCH_DEFAULT_QUOTA


def choose_image(name: object) -> Image | None:
    """The enabled image named ``name``, the default image when no name is given (None when there
    is none: the host's own default), else InvalidInput listing the images there are."""
    if name in (None, ""):
        return Image.objects.filter(enabled=True, is_default=True).first()
    image = Image.objects.filter(enabled=True, name=name).first() if isinstance(name, str) else None
    if image is None:
        offered = ", ".join(Image.objects.filter(enabled=True).values_list("name", flat=True)) or "none"
        message = f"Unknown image: {str(name)[:64]!r} (images: {offered})"
        raise InvalidInput(message, fields={"image": [message]})
    return image


def choose_plan(name: object) -> Plan | None:
    """The enabled plan named ``name``, or the default plan when no name is given (None when there
    is none: the host's default size), else InvalidInput listing the plans there are."""
    if name in (None, ""):
        return Plan.objects.filter(enabled=True, is_default=True).first()
    plan = Plan.objects.filter(enabled=True, name=name).first() if isinstance(name, str) else None
    if plan is None:
        offered = ", ".join(Plan.objects.filter(enabled=True).values_list("name", flat=True)) or "none"
        message = f"Unknown plan: {str(name)[:64]!r} (plans: {offered})"
        raise InvalidInput(message, fields={"plan": [message]})
    return plan


def resource_limits_for(user: User) -> Resources:
    """The user's limits: their own, else the site's (``DEVBENCH_DEFAULT_*_QUOTA``); none set, no
    limit but the bench count."""
    site = {
        "vcpus": settings.DEVBENCH_DEFAULT_VCPU_QUOTA,
        "memory_mib": settings.DEVBENCH_DEFAULT_MEMORY_QUOTA_MIB,
        "disk_gib": settings.DEVBENCH_DEFAULT_DISK_QUOTA_GIB,
    }
    own = {"vcpus": user.vcpu_quota, "memory_mib": user.memory_quota_mib, "disk_gib": user.disk_quota_gib}
    return Resources(**{field: site[field] if value is None else value for field, value in own.items()})


def resources_held_by(user: User) -> Resources:
    """What the user's benches take together (a bench being deleted still holds its VM)."""
    totals = DevBench.objects.filter(user=user).aggregate(
        vcpus=Sum("vcpus"), memory_mib=Sum("memory_mib"), disk_gib=Sum("disk_gib")
    )
    return Resources(**{field: totals[field] or 0 for field in ("vcpus", "memory_mib", "disk_gib")})


def check_resource_quota(user: User, plan: Plan | None) -> None:
    """InvalidInput saying which limit a bench of ``plan`` would pass; call under the user's lock."""
    if plan is None:
        return
    limits, held, wanted = resource_limits_for(user), resources_held_by(user), Resources.of_plan(plan)
    for field, unit in RESOURCE_UNITS:
        limit, used, needed = getattr(limits, field), getattr(held, field), getattr(wanted, field)
        if limit is not None and used + needed > limit:
            raise InvalidInput(
                f"Quota reached: plan {plan.name} needs {needed} {unit} and your benches use {used} of your "
                f"{limit}. Delete a bench or choose a smaller plan."
            )
