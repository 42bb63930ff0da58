"""gunicorn settings for the stack tests: the network guard is armed again in each worker.

A gevent worker patches the socket module when it starts, after ``sitecustomize`` armed the guard
on the stdlib classes; arming again wraps the classes the worker really uses.
"""

from __future__ import annotations

from typing import Any

import stack_guard

# gunicorn 24+ opens a control socket in ~/.gunicorn; tests running side by side would share it.
control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    stack_guard.arm()
