"""ha-orchestrator: high-availability failover orchestration."""

__version__ = "0.1.0"
