"""``ha discover aws``: list the instances that carry some tags, as scenario drafts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from providers.aws import AwsProvider
from providers.aws_api import LIVE_STATES

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


async def discover(provider: AwsProvider, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """One scenario draft per instance (not terminated) carrying every tag in ``tags``
    (a value ``*`` matches any value), sorted by name.

    Each draft names the scenario after the instance's Name tag (else its id), and gives
    production's private address and the machine by instance id, which stays unambiguous when
    Name tags repeat. The replica, checks and redirection are the operator's to add.
    """
    filters = [{"Name": "instance-state-name", "Values": LIVE_STATES}]
    for key, value in tags.items():
        if value == "*":
            filters.append({"Name": "tag-key", "Values": [key]})
        else:
            filters.append({"Name": f"tag:{key}", "Values": [value]})
    subject = "instances tagged " + (", ".join(f"{k}={v}" for k, v in tags.items()) or "*")
    pages = await provider.api.pages("DescribeInstances", subject, Filters=filters)
    drafts = []
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                drafts.append(_draft(provider.name, instance))
    return sorted(drafts, key=lambda draft: (draft["name"], draft["production"]["address"]))


def _draft(provider: str, instance: dict[str, Any]) -> dict[str, Any]:
    iid: str = instance["InstanceId"]
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    name = _NOT_IN_NAME.sub("-", tags.get("Name", "")).strip("-._")[:63] or iid
    return {
        "name": name,
        "production": {
            "address": instance.get("PrivateIpAddress", ""),
            "machine": {"provider": provider, "name": iid},
        },
    }
