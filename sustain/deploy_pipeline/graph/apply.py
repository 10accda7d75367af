"""Apply rendered manifests to a cluster with the ``kubernetes`` client: a server-side dry-run of every object
first, then the real server-side apply, so one refused object leaves the cluster untouched.

Only runs with ``KUBECONFIG`` set: without it, :func:`apply_manifests` raises ConfigError with a sentence.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sustain.errors import ConfigError, SustainError

FIELD_MANAGER = "sustain"


class ApplyError(SustainError):
    """The cluster refused an object (or could not be reached)."""

    code = "apply_failed"
    http_status = 502
    exit_code = 3


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    namespace: str | None


def _describe(manifest: dict[str, Any]) -> str:
    meta = manifest.get("metadata", {})
    namespace = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest.get('kind')} {namespace}{meta.get('name')}"


def _client(kubeconfig: str) -> Any:
    try:
        from kubernetes import config
        from kubernetes.dynamic import DynamicClient
    except ImportError:
        raise ConfigError("applying to a cluster needs the kubernetes client: pip install 'sustain[deploy]'") from None

    try:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return DynamicClient(api)  # type: ignore[no-untyped-call]
    except Exception as exc:  # the client raises many kinds: bad file, unreachable server, no context
        raise ApplyError(f"cannot connect with KUBECONFIG={kubeconfig}: {exc}") from None


def require_kubeconfig(kubeconfig: str | None = None) -> str:
    """The kubeconfig path to use, or ConfigError with a sentence when none is set."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path:
        raise ConfigError(
            "KUBECONFIG is not set, so there is no cluster to apply to; point it at a kubeconfig file, or use "
            "`sustain graph render` and apply the files yourself"
        )
    return path


def apply_manifests(
    manifests: list[dict[str, Any]],
    *,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    dry_run_only: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[Applied]:
    """Dry-run every manifest on the server, then apply them (unless ``dry_run_only``)."""
    path = require_kubeconfig(kubeconfig)
    client = _client(path)
    from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

    applied: list[Applied] = []
    for dry_run in (True, False) if not dry_run_only else (True,):
        for manifest in manifests:
            meta = manifest.setdefault("metadata", {})
            ns = meta.get("namespace") or namespace or "default"
            what = _describe(manifest)
            try:
                resource = client.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
                client.server_side_apply(
                    resource,
                    body=manifest,
                    namespace=ns if resource.namespaced else None,
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,
                    dry_run="All" if dry_run else None,
                )
            except ResourceNotFoundError:
                raise ApplyError(
                    f"the cluster does not know {manifest['apiVersion']} {manifest['kind']}: install its operator "
                    f"(CRD) first ({what})"
                ) from None
            except DynamicApiError as exc:
                phase = "dry-run of" if dry_run else "apply of"
                reason = exc.summary()  # type: ignore[no-untyped-call]
                raise ApplyError(f"the cluster refused the {phase} {what}: {reason}") from None
            if progress is not None:
                progress(f"{'dry-run ok' if dry_run else 'applied'}: {what}")
            if not dry_run:
                applied.append(Applied(manifest["kind"], meta.get("name", ""), ns))
    return applied
