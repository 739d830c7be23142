"""Kubernetes / Helm: the chart version and the Airflow image are pinned."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .declared import HELM_RELEASE, UNKNOWN, Declared, value_at

PINNED_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.+_-]*)?$")
PINNED_IMAGE_TAG = re.compile(r"^(?:slim-)?v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.+_-]*)?$")
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def chart_and_image_pinned(resource: Declared, config: Mapping[str, Any] | None = None) -> list[str]:
    """Every chart version is an exact version; the Airflow chart's image is an exact tag or a sha256 digest."""
    if resource.type != HELM_RELEASE:
        return []
    inputs = resource.inputs
    messages: list[str] = []
    version = inputs.get("version")
    if version is not UNKNOWN and not (isinstance(version, str) and PINNED_VERSION.match(version)):
        messages.append(
            f"{resource.name}: chart version `{version}` is not pinned: give an exact version such as 1.19.0"
        )
    chart = inputs.get("chart")
    if not (isinstance(chart, str) and chart.rsplit("/", 1)[-1] == "airflow"):
        return messages  # another chart (an operator, say): only its version is judged
    image = value_at(inputs, "values", "images", "airflow") or {}
    tag, digest = value_at(image, "tag"), value_at(image, "digest")
    if tag is UNKNOWN or digest is UNKNOWN:
        return messages
    if digest:
        if not (isinstance(digest, str) and IMAGE_DIGEST.match(digest)):
            messages.append(f"{resource.name}: values.images.airflow.digest `{digest}` is not a sha256 digest")
    elif not (isinstance(tag, str) and PINNED_IMAGE_TAG.match(tag)):
        messages.append(
            f"{resource.name}: values.images.airflow.tag `{tag}` is not pinned: give an exact version "
            "(3.3.2) or a digest"
        )
    return messages
