"""A failure lab in network namespaces: production and replica as real HTTP servers in their own
namespaces, joined to the orchestrator's namespace, where the daemon, its clients and two BIND9
servers run. Nothing in it is reachable from (or reaches out of) the root namespace.

- :mod:`tests.lab.namespaces`: the namespaces, their links and addresses, a thread inside one
- :mod:`tests.lab.services`: processes started inside a namespace (HTTP, BIND9), stopped by PID
- :mod:`tests.lab.faults`: faults on demand (kill, hang, cut a link, drop packets)
- :mod:`tests.lab.proxy`: a TCP proxy adding latency spikes (``tc netem`` does not exist here)
- :mod:`tests.lab.lab`: all of it together, with the daemon and its config
"""
