"""DevBench against its limits: measurements, not timed tests (``make bench``; docs/PERFORMANCE.md).

Each module measures one thing and, in the same run, the ceiling it is compared with:

- ``log_streaming``       50 concurrent jobs on a real sshd, 50 WebSocket clients through Daphne
- ``provisioning``        overhead of one create over a bare ``ssh host script``
- ``status_sync``         1,000 benches on 4 sshd hosts in one pass, beside one ssh per bench
- ``http``                wrk against the dashboard and the API beside a trivial view
- ``ws_fanout``           1,000 WebSocket clients of 100 users, one status change each
- ``sessionhost_resync``  1,000 users' session hosts in the Kubernetes emulator

``python -m benchmarks`` runs them all (``--only NAME`` to pick), writes
``benchmarks/results/<name>.json`` and prints a table.
"""
