"""A small client of the Confluent Schema Registry REST API (only what the codec needs).

Subjects follow the record-name strategy (subject = the record's full name), so one subject
serves every topic that carries the record. Ids and schemas are cached for the process's life:
a registry id never changes meaning.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from streams.contracts.schemas import SchemaVersion
from streams.errors import UnknownSchema

__all__ = ["SchemaRegistryClient"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryClient:
    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(5.0),
            headers={"Accept": _CONTENT_TYPE},
            transport=transport,
        )
        self._ids: dict[bytes, int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SchemaRegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def id_for(self, version: SchemaVersion) -> int:
        """Register (idempotent in the registry) and return the schema id."""
        if version.fingerprint not in self._ids:
            body = {"schema": json.dumps(version.raw)}
            response = self._request("POST", f"/subjects/{version.full_name}/versions", body)
            self._ids[version.fingerprint] = int(response["id"])
            self._schemas[int(response["id"])] = version.raw
        return self._ids[version.fingerprint]

    def schema_for(self, schema_id: int) -> dict[str, Any]:
        if schema_id not in self._schemas:
            response = self._request("GET", f"/schemas/ids/{schema_id}", None)
            self._schemas[schema_id] = json.loads(response["schema"])
        return self._schemas[schema_id]

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body, headers={"Content-Type": _CONTENT_TYPE})
        except httpx.HTTPError as exc:
            raise UnknownSchema(f"schema registry unreachable ({method} {path}): {exc}") from exc
        if response.status_code != 200:
            raise UnknownSchema(
                f"schema registry answered {response.status_code} to {method} {path}: {response.text[:200]}"
            )
        data: dict[str, Any] = response.json()
        return data
