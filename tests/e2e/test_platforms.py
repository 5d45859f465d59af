"""Failovers through the daemon against real platform simulators: vSphere (govmomi's vcsim) and
AWS (moto's server stands in for AWS). Production's health comes from a file-backed script check,
since the simulated machines serve nothing; fencing, activation and redirection are real API calls.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from providers.vsphere import VsphereConfig, VsphereProvider
from tests.e2e.site import DaemonRunner
from tests.e2e.test_failover import FAILOVER_STEPS
from tests.servers.moto_aws import MotoServer, Vpc
from tests.servers.vcsim import Vcsim

PROD_VM, REPLICA_VM = "DC0_H0_VM0", "DC0_C0_RP0_VM0"


def scenario(site: DaemonRunner, provider: str, production: str, replica: str) -> dict[str, Any]:
    return {
        "name": "app",
        "production": {
            "address": "127.0.0.2",
            "machine": {"provider": provider, "name": production},
        },
        "replica": {
            "address": "127.0.0.3",
            "machine": {"provider": provider, "name": replica},
            "standby": True,
        },
        "checks": [
            {
                "kind": "script",
                "command": ["test", "-e", f"{site.dir}/{{target}}.alive"],
                "interval": "200ms",
                "side": "production",
            }
        ],
        "failover": {"failures": 2},
        "fence": True,
        "runbook": {"retry_delay": "200ms", "step_timeout": "30s"},
    }


def write(site: DaemonRunner, providers: dict[str, Any], app: dict[str, Any]) -> None:
    config = {"api": {"port": site.api_port}, "providers": providers, "scenarios": [app]}
    if "dc1" in providers:
        config["discovery"] = {"providers": ["dc1"], "interval": "1h"}
    site.config_path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def site(tmp_path: Path) -> Any:
    runner = DaemonRunner(tmp_path)
    (tmp_path / "127.0.0.2.alive").touch()
    yield runner
    runner.stop()


def test_vsphere_failover_fences_production_and_powers_on_the_standby(
    site: DaemonRunner, vcsim: Vcsim
) -> None:
    dc1 = VsphereProvider("dc1", VsphereConfig.model_validate(vcsim.provider_config()))

    async def power(vm: str, on: bool) -> str:
        if on:
            await dc1.power_on(vm)
        else:
            await dc1.power_off(vm, hard=True)
        return str(await dc1.power_state(vm))

    async def states() -> tuple[str, str]:
        return str(await dc1.power_state(PROD_VM)), str(await dc1.power_state(REPLICA_VM))

    try:
        assert asyncio.run(power(PROD_VM, True)) == "on"
        assert asyncio.run(power(REPLICA_VM, False)) == "off"
        _vsphere_failover(site, vcsim)
        assert asyncio.run(states()) == ("off", "on")
    finally:
        asyncio.run(dc1.close())


def _vsphere_failover(site: DaemonRunner, vcsim: Vcsim) -> None:
    write(site, {"dc1": vcsim.provider_config()}, scenario(site, "dc1", PROD_VM, REPLICA_VM))
    site.start_daemon()

    refused = site.ha("vm", "dc1", "off", PROD_VM)
    assert refused.returncode == 1
    assert f"{PROD_VM} belongs to scenario app" in refused.stderr
    listed = site.ha("vm", "dc1", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{PROD_VM}\t" in listed.stdout
    drafts = yaml.safe_load(site.ha("discover", "dc1").stdout)
    drafted = {s["production"]["machine"]["name"] for s in drafts["scenarios"]}
    assert PROD_VM not in drafted
    assert REPLICA_VM not in drafted
    assert "DC0_H0_VM1" in drafted
    site.wait_until(
        lambda: any(e["kind"] == "unprotected_machine" for e in site.journal()), 10, "discovery"
    )
    unprotected = {
        e["data"]["machine"] for e in site.journal() if e["kind"] == "unprotected_machine"
    }
    assert "DC0_H0_VM1" in unprotected
    assert PROD_VM not in unprotected

    (site.dir / "127.0.0.2.alive").unlink()
    site.wait_state("switched", timeout=30, name="app")
    done = [e["step"] for e in site.journal() if e["kind"] == "step_done"]
    assert done == FAILOVER_STEPS


def test_failover_to_cloud_starts_the_standby_instance_and_moves_the_elastic_ip(
    site: DaemonRunner, moto_aws: MotoServer, aws_vpc: Vpc
) -> None:
    production = aws_vpc.launch("onprem-app")
    standby = aws_vpc.launch("app-standby", running=False)
    allocation = aws_vpc.ec2.allocate_address(Domain="vpc")["AllocationId"]
    aws_vpc.ec2.associate_address(AllocationId=allocation, InstanceId=production)
    cloud = {
        "type": "aws",
        "region": "eu-west-1",
        "endpoint_url": moto_aws.endpoint,
        "wait_timeout": "20s",
        "poll_interval": "100ms",
    }
    app = scenario(site, "cloud", "onprem-app", "app-standby")
    app["redirect"] = [
        {
            "elastic_ip": {
                "provider": "cloud",
                "allocation_id": allocation,
                "production": {"instance": "onprem-app"},
                "replica": {"instance": "app-standby"},
            }
        }
    ]
    write(site, {"cloud": cloud}, app)
    site.start_daemon()

    (site.dir / "127.0.0.2.alive").unlink()
    site.wait_state("switched", timeout=60, name="app")
    assert aws_vpc.state(production) == "stopped"  # fenced
    assert aws_vpc.state(standby) == "running"
    address = aws_vpc.ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    assert address["NetworkInterfaceId"] == aws_vpc.primary_eni(standby)
    redirect = next(
        e for e in site.journal() if e["kind"] == "step_done" and e["step"] == "redirect"
    )
    assert allocation in redirect["message"]
