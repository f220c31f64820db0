"""The machine-image rule: every node type names the image it boots.

Without an ImageId, Ray's AWS provider boots its built-in default, an end-of-life Deep Learning AMI
(Ubuntu 18.04) whose NVIDIA driver is too old for the CUDA build of ltray's torch; GCP boots a plain
image with no driver at all. The check warns (it cannot know which images exist offline).
"""

from __future__ import annotations

from ltray.cluster.nodes import key_path, mapping, node_types
from ltray.cluster.problems import Problem

AWS_HINT = ("set ImageId to a current GPU image, e.g. resolve:ssm:/aws/service/deeplearning/ami/x86_64/"
            "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id (docs/cluster.md, 'Machine images')")
GCP_HINT = ("set disks[0].initializeParams.sourceImage to a Deep Learning VM image with an NVIDIA driver >= 580, "
            "e.g. projects/deeplearning-platform-release/global/images/family/common-cu129-ubuntu-2204-nvidia-580")


def image_warnings(config: dict) -> list[Problem]:
    provider = mapping(config.get("provider")).get("type")
    out = []
    for name, spec in node_types(config).items():
        node = mapping(spec.get("node_config"))
        if provider == "aws" and not node.get("ImageId"):
            out.append(Problem(key_path("available_node_types", name, "node_config", "ImageId"),
                               f"no machine image pinned: Ray would boot its end-of-life default AMI; {AWS_HINT}"))
        elif provider == "gcp":
            disks = node.get("disks") if isinstance(node.get("disks"), list) else []
            images = [mapping(mapping(d).get("initializeParams")).get("sourceImage") for d in disks]
            if not any(images):
                out.append(Problem(key_path("available_node_types", name, "node_config", "disks"),
                                   f"no machine image pinned; {GCP_HINT}"))
    return out
