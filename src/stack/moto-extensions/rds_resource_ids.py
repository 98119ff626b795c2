"""Every RDS instance gets its own DbiResourceId.

moto 5 gives every DB instance the same resource ID
("db-M5ENSHXFPU6XHZ4G4ZEI5QIO2U", hard-coded in DBInstance.__init__). The
Terraform AWS provider reads an `aws_db_instance` back by that ID, so with two
instances (the old and the new one of a db-migration) it finds the wrong one
or none. Real RDS IDs are unique per instance; so are these.
"""

import secrets
import string

from moto.rds import models

_ALPHABET = string.ascii_uppercase + string.digits


def _new_resource_id() -> str:
    return "db-" + "".join(secrets.choice(_ALPHABET) for _ in range(26))


def install() -> None:
    original_init = models.DBInstance.__init__

    def init_with_unique_id(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        self.dbi_resource_id = _new_resource_id()

    models.DBInstance.__init__ = init_with_unique_id
