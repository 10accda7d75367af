"""The errors of inference units, in sustain's one exception tree (code, HTTP status, exit code).

A backend failure is one of two kinds, and the unit treats them differently:

* :class:`BackendUnavailable`: the backend could not answer (refused connection, 429, 502, 503, 504). Nothing
  is wrong with the requests; the unit waits and sends the same batch again, however long that takes.
* :class:`BackendRejected`: the backend answered with an error, or an answer the unit cannot use. Some item
  of the batch may be bad: the unit bisects the batch to find it while the others are answered.

A backend that times out is unavailable until the same batch has timed out ``max_deliveries`` times in a row,
then the batch is bisected like a rejected one (an item may be what makes the backend hang).
"""

from __future__ import annotations

from sustain.errors import SustainError


class InferenceError(SustainError):
    """Base of the inference units' errors."""

    code = "inference"
    http_status = 500


class QueueUnavailable(InferenceError):
    """Redis cannot be reached or refused a command."""

    code = "queue_unavailable"
    http_status = 503
    exit_code = 3


class BackendUnavailable(InferenceError):
    code = "backend_unavailable"
    http_status = 503
    exit_code = 3


class BackendTimeout(BackendUnavailable):
    code = "backend_timeout"
    http_status = 504


class BackendRejected(InferenceError):
    code = "backend_rejected"
    http_status = 502


class InferenceFailed(InferenceError):
    """The request was dead-lettered: the answer is this error, with the backend's reason."""

    code = "inference_failed"
    http_status = 502


class ResultTimeout(InferenceError):
    """No answer within the time the caller was willing to wait (the request may still be answered later)."""

    code = "result_timeout"
    http_status = 504
