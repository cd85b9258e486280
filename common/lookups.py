"""Query expressions shared by the apps."""

from __future__ import annotations

import json
import uuid

from django.db.models import Lookup, UUIDField


class InArray(Lookup):
    """``filter(InArray(F("image_id"), ids))``: what ``image_id__in=ids`` selects, with the values sent as ONE
    parameter (a PostgreSQL array compared with ``= ANY``; on SQLite a JSON array read by ``json_each``).

    For long lists (a bulk write's batch of 5,000 ids): ``__in`` builds one placeholder per value, which Django
    prepares, the driver quotes into the statement and the server plans one by one; an array is one value. The
    values are those of the left-hand column (ids: UUIDs, integers, text)."""

    lookup_name = "in_array"
    prepare_rhs = False

    def __init__(self, lhs, rhs):
        super().__init__(lhs, list(rhs))

    def as_sql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        if isinstance(field, UUIDField) and all(type(value) is uuid.UUID for value in self.rhs):
            # What UUIDField.get_db_prep_value gives, without its per-value layers (batches hold thousands).
            values = self.rhs if connection.features.has_native_uuid_field else [value.hex for value in self.rhs]
        else:
            values = [field.get_db_prep_value(value, connection, prepared=False) for value in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs_sql} = ANY(%s)", (*lhs_params, values)
        # The column is compiled by Django; the values are a parameter.
        return f"{lhs_sql} IN (SELECT value FROM json_each(%s))", (*lhs_params, json.dumps(values))  # noqa: S608
