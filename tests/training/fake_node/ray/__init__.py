"""Fake Ray for the simulated node: records ray.init's runtime_env; two nodes (FAKE_RAY_BLIND_NODE=1 makes
the second one read nothing, like a node without the shared filesystem)."""
import json
import os

_initialized = False


def _record(event, **detail):
    with open(os.environ["FAKE_NODE_LOG"], "a") as log:
        log.write(json.dumps({"event": event, **detail}) + "\n")


def init(*args, runtime_env=None, **kwargs):
    global _initialized
    _initialized = True
    _record("ray_init", runtime_env=runtime_env)


def is_initialized():
    return _initialized


def nodes():
    return [{"NodeID": "head", "Alive": True, "NodeManagerAddress": "10.0.0.1"},
            {"NodeID": "worker", "Alive": True, "NodeManagerAddress": "10.0.0.2"}]


class _Remote:
    def __init__(self, fn, node=None):
        self.fn, self.node = fn, node

    def options(self, scheduling_strategy=None, **kwargs):
        return _Remote(self.fn, getattr(scheduling_strategy, "node_id", None))

    def remote(self, *args):
        if self.node == "worker" and os.environ.get("FAKE_RAY_BLIND_NODE"):
            return None
        return self.fn(*args)


def remote(*args, **kwargs):
    if args and callable(args[0]):
        return _Remote(args[0])
    return lambda fn: _Remote(fn)


def get(values):
    return values
