"""The service's Redis data layer: every key, script and record the API and workers share.

`api/` and `worker/` both import this package and never each other: the API enqueues work and
reads answers through it without loading the network, and a worker writes answers through it.
"""
