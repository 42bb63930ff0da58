"""imdscreds' benchmarks: its refresh behaviour against botocore and the other Python IMDS clients.

Run ``python -m benchmarks`` (a few minutes) or ``python -m benchmarks --quick`` (under a minute).
Every peer talks to the same FakeIMDS on 127.0.0.1, under imdscreds' network guard.
"""
