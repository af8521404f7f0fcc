"""The session-host settings as one frozen value, so the manifest builders stay free of Django."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

DNS_LABEL_MAX = 63
_PREFIX_RE = re.compile(r"\A[a-z0-9]([-a-z0-9]*)?\Z")


@dataclass(frozen=True)
class SessionHostConfig:
    """Everything the manifests need besides the username (see docs/kubernetes.md)."""

    image: str = "ghcr.io/devbench/session-host:latest"
    image_pull_policy: str = "IfNotPresent"
    port: int = 8080
    domain: str = "devbench.example.com"
    cluster_issuer: str = "letsencrypt"
    ingress_class: str = ""
    ingress_annotations: tuple[tuple[str, str], ...] = ()
    storage_class: str = ""
    home_size: str = "10Gi"
    workspace_size: str = "20Gi"
    namespace_prefix: str = "devbench-"
    cpu_request: str = "250m"
    memory_request: str = "512Mi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"
    run_as_user: int = 1000
    service_account: str = ""

    def __post_init__(self) -> None:
        # Usernames have at most 32 letters; the namespace must stay a DNS label.
        if not _PREFIX_RE.match(self.namespace_prefix) or len(self.namespace_prefix) + 32 > DNS_LABEL_MAX:
            raise ValueError(
                f"DEVBENCH_SESSIONHOST_NAMESPACE_PREFIX {self.namespace_prefix!r} must be lowercase letters, "
                f"digits and '-', at most {DNS_LABEL_MAX - 32} characters"
            )

    @classmethod
    def from_settings(cls) -> SessionHostConfig:
        """Build the config from the ``DEVBENCH_SESSIONHOST_*`` settings."""
        return cls(
            image=settings.DEVBENCH_SESSIONHOST_IMAGE,
            image_pull_policy=settings.DEVBENCH_SESSIONHOST_IMAGE_PULL_POLICY,
            port=settings.DEVBENCH_SESSIONHOST_PORT,
            domain=settings.DEVBENCH_SESSIONHOST_DOMAIN,
            cluster_issuer=settings.DEVBENCH_SESSIONHOST_CLUSTER_ISSUER,
            ingress_class=settings.DEVBENCH_SESSIONHOST_INGRESS_CLASS,
            ingress_annotations=tuple(
                (str(key), str(value)) for key, value in settings.DEVBENCH_SESSIONHOST_INGRESS_ANNOTATIONS.items()
            ),
            storage_class=settings.DEVBENCH_SESSIONHOST_STORAGE_CLASS,
            home_size=settings.DEVBENCH_SESSIONHOST_HOME_SIZE,
            workspace_size=settings.DEVBENCH_SESSIONHOST_WORKSPACE_SIZE,
            namespace_prefix=settings.DEVBENCH_SESSIONHOST_NAMESPACE_PREFIX,
            cpu_request=settings.DEVBENCH_SESSIONHOST_CPU_REQUEST,
            memory_request=settings.DEVBENCH_SESSIONHOST_MEMORY_REQUEST,
            cpu_limit=settings.DEVBENCH_SESSIONHOST_CPU_LIMIT,
            memory_limit=settings.DEVBENCH_SESSIONHOST_MEMORY_LIMIT,
            run_as_user=settings.DEVBENCH_SESSIONHOST_RUN_AS_USER,
            service_account=settings.DEVBENCH_SESSIONHOST_SERVICE_ACCOUNT,
        )

    def namespace_for(self, username: str) -> str:
        """The user's namespace: ``<prefix><username lowercased>``."""
        return f"{self.namespace_prefix}{username.lower()}"

    def host_for(self, username: str) -> str:
        """The ingress host: ``<username>.<domain>`` (lowercase, as DNS names are)."""
        return f"{username.lower()}.{self.domain}"

    def url_for(self, username: str) -> str:
        """The session host's public URL."""
        return f"https://{self.host_for(username)}/"
