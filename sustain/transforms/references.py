"""Profile reference data when it is uploaded, keeping every version on the model's bins.

The first reference uploaded for a model (or the version the spec names under
``reference.version``) defines the bins; every other version's profile is
counted on those bins so that windows, which are binned once per model, compare
with any version's reference. When the binning reference itself is replaced,
the other profiles are recounted from their stored reference rows.
"""

from __future__ import annotations

from sustain.errors import NotFound
from sustain.spec import ModelSpec
from sustain.store.base import Store
from sustain.transforms.plan import column_kinds
from sustain.transforms.profile import ReferenceProfile, build_profile
from sustain.transforms.protocols import WindowStore


def _build(spec: ModelSpec, store: Store, version: str, binning: ReferenceProfile | None) -> ReferenceProfile:
    table = store.read_reference(spec.name, version)
    if table is None:
        raise NotFound(f"model {spec.name!r} has no reference data for version {version!r}")
    settings = spec.reference
    return build_profile(
        spec.name,
        version,
        table,
        column_kinds(spec),
        bins=settings.bins,
        max_categories=settings.max_categories,
        sample_size=settings.sample_size,
        binning=binning,
        labelled_size=settings.labelled_sample_size if spec.label is not None else 0,
    )


def profile_reference(store: Store, windows: WindowStore, spec: ModelSpec, version: str) -> ReferenceProfile:
    """Compute and store the profile of ``version``'s reference; recount other versions if the bins moved."""
    current = windows.binning_profile(spec)
    is_binning = current is None or current.version == version or spec.reference.version == version
    profile = _build(spec, store, version, None if is_binning else current)
    if is_binning and current is not None and current.version == version:
        profile.created_at = current.created_at  # keep its place as the first reference
    windows.put_profile(profile)
    if is_binning and (current is None or current.fingerprint() != profile.fingerprint()):
        for other in windows.list_profiles(spec.name):
            if other.version != version and store.read_reference(spec.name, other.version) is not None:
                recounted = _build(spec, store, other.version, profile)
                recounted.created_at = other.created_at
                windows.put_profile(recounted)
    return profile
