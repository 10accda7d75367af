"""The release pipeline's errors, in sustain's one exception tree.

>>> RegistryUnavailable("no answer").to_dict()
{'code': 'registry_unavailable', 'message': 'no answer'}
>>> RegistryUnavailable.http_status, RegistryUnavailable.exit_code
(503, 3)
"""

from __future__ import annotations

from sustain.errors import SustainError, Unauthorized


class RegistryUnavailable(SustainError):
    """The MLflow registry cannot be reached or answered with an error that is not about the model."""

    code = "registry_unavailable"
    http_status = 503
    exit_code = 3


class TargetFailed(SustainError):
    """A deploy target could not serve, route or stop a version."""

    code = "target_failed"
    http_status = 502
    exit_code = 3


class WebhookRejected(Unauthorized):
    """A webhook delivery is not signed with the configured secret, or its timestamp is stale."""

    code = "webhook_rejected"
