"""Names of the environment variables perianctl stamps into a PERIAN job's container.

PERIAN keeps a job's ``docker_run_parameters.env_variables`` and returns them with the job, so they
are the only place a client can leave a mark that a later lookup finds. Everyone who reads or writes
the marks imports the names from here: the client (create-once lookup), the connector (attempts,
reaping) and the sandbox (its admin view of jobs). Standard library only, no imports at all.
"""

IDEMPOTENCY_ENV = "PERIANCTL_IDEMPOTENCY_KEY"
"""Stamped into a job so a retried create can find the job an earlier try made."""

NODE_TAG_ENV = "PERIANCTL_FLYTE_NODE"
"""The Flyte node a connector-created job belongs to (the same for every attempt of the node)."""

ATTEMPT_ENV = "PERIANCTL_FLYTE_ATTEMPT"
"""The Flyte retry attempt a connector-created job belongs to."""
