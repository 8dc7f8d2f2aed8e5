"""The cluster `TF_CONFIG` describes for `--strategy multi_worker`, read without TensorFlow.

Checked with the run's other settings (`TrainConfig.validate`), so that a
missing or malformed one is refused before TensorFlow loads.
"""

import json
import os

TF_CONFIG_ENV = "TF_CONFIG"


def check_tf_config():
    """This task's address in `TF_CONFIG`; ValueError unless it names a chief or worker of its cluster."""
    example = (
        '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    )
    text = os.environ.get(TF_CONFIG_ENV)
    if not text:
        raise ValueError(f"strategy 'multi_worker' needs ${TF_CONFIG_ENV}, such as {example}")
    try:
        tf_config = json.loads(text)
    except ValueError as e:
        raise ValueError(
            f"${TF_CONFIG_ENV} is not valid JSON ({e}; expected JSON such as {example})"
        ) from None
    try:
        task = tf_config["task"]
        addresses = tf_config["cluster"][task["type"]]
        valid = (
            task["type"] in ("chief", "worker")
            and isinstance(addresses, list)
            and task["index"] in range(len(addresses))
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise ValueError(
            f"${TF_CONFIG_ENV} {text} does not name a chief or worker task of its cluster (expected "
            f"JSON such as {example})"
        )
    return addresses[task["index"]]
