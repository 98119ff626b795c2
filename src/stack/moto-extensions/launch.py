"""Runs moto's server with the project's extensions to the emulator loaded first.

moto is the AWS we test against; where it lacks an API a runbook calls, or
answers in a way real AWS never would, an extension here mends moto itself
(the real SDK and the real Terraform provider still talk HTTP to it).
Each extension is a module in this folder with an `install()` function, and
says which moto behaviour it changes and why.

Usage: python3 launch.py [moto_server arguments]
"""

import importlib
import os
import sys

EXTENSIONS = [
    "rds_resource_ids",
    "codepipeline_transitions",
]


def main() -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    for name in EXTENSIONS:
        importlib.import_module(name).install()
    from moto.server import main as moto_server

    moto_server(sys.argv[1:])


if __name__ == "__main__":
    main()
