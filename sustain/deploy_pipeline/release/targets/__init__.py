"""Deploy targets, by name: ``local`` and ``kubernetes`` here, more from ``sustain.targets`` entry points.

>>> sorted(n for n in targets.names() if n in ("local", "kubernetes"))
['kubernetes', 'local']
"""

from __future__ import annotations

from sustain.deploy_pipeline.release.targets.base import (
    Deployment,
    Routing,
    Target,
    TargetContext,
    TargetFactory,
)
from sustain.registry import Registry

targets: Registry[TargetFactory] = Registry("deploy target", entry_point_group="sustain.targets")


def _local(context: TargetContext) -> Target:
    from sustain.deploy_pipeline.release.targets.local import LocalTarget

    return LocalTarget.from_context(context)


def _kubernetes(context: TargetContext) -> Target:
    from sustain.deploy_pipeline.release.targets.kubernetes import KubernetesTarget

    return KubernetesTarget.from_context(context)


targets.register("local", _local)
targets.register("kubernetes", _kubernetes)

__all__ = ["Deployment", "Routing", "Target", "TargetContext", "TargetFactory", "targets"]
