"""Snapshots of an instance's EBS volumes (for Assured Recovery), and reverting to them.

A snapshot *set* is what one CreateSnapshots call makes: one snapshot per attached volume, root
and data, taken at the same moment. Every snapshot of a set is tagged ``Name`` (the snapshot's
name), ``ha:snapshot-set`` (the set's id, which :func:`snapshot_volumes` returns),
``ha:instance`` and ``ha:device`` (where its volume was attached).

Reverting swaps volumes on the stopped instance (the caller stops and restarts it): for each
snapshot, create a volume from it (or reuse one an interrupted revert created), tag the volume
it replaces ``ha:replaced-by`` the set, detach that, attach the new one at the same device with
the same DeleteOnTermination, and at the end delete every detached volume tagged as replaced by
the set. Run again after an interruption, it finishes the job.
"""

from __future__ import annotations

import uuid
from typing import Any

from ha.errors import NotSupported
from providers.aws_api import Ec2Api, Response

SET_TAG = "ha:snapshot-set"
DEVICE_TAG = "ha:device"
INSTANCE_TAG = "ha:instance"
REPLACED_TAG = "ha:replaced-by"


async def snapshot_volumes(api: Ec2Api, instance: Response, name: str) -> str:
    """Snapshot every EBS volume of ``instance`` at once; return the set's id."""
    iid = instance["InstanceId"]
    devices = {
        m["Ebs"]["VolumeId"]: m["DeviceName"]
        for m in instance.get("BlockDeviceMappings", [])
        if "Ebs" in m
    }
    if not devices:
        raise NotSupported(f"{iid} has no EBS volumes to snapshot")
    set_id = f"ha-{uuid.uuid4().hex[:12]}"
    tags = {"Name": name, SET_TAG: set_id, INSTANCE_TAG: iid}
    response = await api.call(
        "CreateSnapshots",
        iid,
        InstanceSpecification={"InstanceId": iid, "ExcludeBootVolume": False},
        Description=f"ha-orchestrator snapshot {name} of {iid}",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(tags)}],
    )
    for snapshot in response["Snapshots"]:
        device = devices.get(snapshot["VolumeId"])
        if device is not None:
            sid = snapshot["SnapshotId"]
            tags = {DEVICE_TAG: device}
            await api.call("CreateTags", sid, Resources=[sid], Tags=_tags(tags))
    return set_id


async def snapshot_set(api: Ec2Api, iid: str, set_id: str, deadline: float) -> list[Response]:
    """The snapshots of set ``set_id`` of instance ``iid``, once all of them are completed."""
    pages = await api.pages(
        "DescribeSnapshots",
        set_id,
        OwnerIds=["self"],
        Filters=[_filter(SET_TAG, set_id), _filter(INSTANCE_TAG, iid)],
    )
    snapshots = [s for page in pages for s in page["Snapshots"]]
    if not snapshots:
        raise NotSupported(f"no snapshot set {set_id} of {iid}")
    if any(DEVICE_TAG not in _tag_map(s) for s in snapshots):
        raise NotSupported(f"snapshot set {set_id} of {iid} is incomplete (no {DEVICE_TAG} tag)")
    ids = [s["SnapshotId"] for s in snapshots]
    await api.wait("snapshot_completed", set_id, "completed", deadline, SnapshotIds=ids)
    return snapshots


async def revert_volumes(
    api: Ec2Api, instance: Response, snapshots: list[Response], deadline: float
) -> None:
    """Swap in a volume made from each snapshot; ``instance`` must be stopped."""
    iid = instance["InstanceId"]
    set_id = _tag_map(snapshots[0])[SET_TAG]
    attached = {m["DeviceName"]: m["Ebs"] for m in instance["BlockDeviceMappings"] if "Ebs" in m}
    old_ids = [ebs["VolumeId"] for ebs in attached.values()]
    olds: dict[str, Response] = {}
    if old_ids:
        found = await api.call("DescribeVolumes", iid, VolumeIds=old_ids)
        olds = {v["VolumeId"]: v for v in found["Volumes"]}
    zone = instance["Placement"]["AvailabilityZone"]
    for snapshot in snapshots:
        device = _tag_map(snapshot)[DEVICE_TAG]
        ebs = attached.get(device)
        old = olds.get(ebs["VolumeId"]) if ebs else None
        new = await _new_volume(api, snapshot, device, zone, old, deadline)
        if ebs is not None:
            vid = ebs["VolumeId"]
            await api.call("CreateTags", vid, Resources=[vid], Tags=_tags({REPLACED_TAG: set_id}))
            await api.call("DetachVolume", vid, VolumeId=vid, InstanceId=iid, Device=device)
            await api.wait("volume_available", vid, "detached", deadline, VolumeIds=[vid])
        await api.call("AttachVolume", new, VolumeId=new, InstanceId=iid, Device=device)
        await api.wait("volume_in_use", new, "attached", deadline, VolumeIds=[new])
        keep = {"DeleteOnTermination": ebs["DeleteOnTermination"] if ebs else False}
        await api.call(
            "ModifyInstanceAttribute",
            iid,
            InstanceId=iid,
            BlockDeviceMappings=[{"DeviceName": device, "Ebs": keep}],
        )
    replaced = await api.pages(
        "DescribeVolumes",
        set_id,
        Filters=[_filter(REPLACED_TAG, set_id), {"Name": "status", "Values": ["available"]}],
    )
    for page in replaced:
        for volume in page["Volumes"]:
            await api.call("DeleteVolume", volume["VolumeId"], VolumeId=volume["VolumeId"])


async def _new_volume(
    api: Ec2Api,
    snapshot: Response,
    device: str,
    zone: str,
    old: Response | None,
    deadline: float,
) -> str:
    """A volume made from ``snapshot`` for ``device``: one an interrupted revert left, or new,
    of the same type (and IOPS, throughput) as the volume it replaces."""
    sid = snapshot["SnapshotId"]
    pages = await api.pages(
        "DescribeVolumes",
        sid,
        Filters=[
            {"Name": "snapshot-id", "Values": [sid]},
            _filter(DEVICE_TAG, device),
            {"Name": "status", "Values": ["creating", "available"]},
        ],
    )
    left = [
        v["VolumeId"]
        for page in pages
        for v in page["Volumes"]
        if REPLACED_TAG not in _tag_map(v)  # a volume swapped out before holds later writes
    ]
    if left:
        vid: str = left[0]
    else:
        params: dict[str, Any] = {}
        if old is not None:
            params["VolumeType"] = old["VolumeType"]
            if old["VolumeType"] in ("io1", "io2", "gp3") and "Iops" in old:
                params["Iops"] = old["Iops"]
            if old["VolumeType"] == "gp3" and "Throughput" in old:
                params["Throughput"] = old["Throughput"]
        tags = {**_tag_map(snapshot), DEVICE_TAG: device}
        created = await api.call(
            "CreateVolume",
            sid,
            SnapshotId=sid,
            AvailabilityZone=zone,
            TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(tags)}],
            **params,
        )
        vid = created["VolumeId"]
    await api.wait("volume_available", vid, "available", deadline, VolumeIds=[vid])
    return vid


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _tag_map(resource: Response) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def _filter(tag: str, value: str) -> dict[str, Any]:
    return {"Name": f"tag:{tag}", "Values": [value]}
