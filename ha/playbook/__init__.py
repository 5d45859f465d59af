"""Playbooks: plays of tasks that drive the daemon through its API (``ha play``)."""
