"""Writes of the ZIP ingestion app, by sub-domain:

- ``upload``: ``zip_upload_create`` accepts a request (checks, staging, one job item per archive);
- ``ingest``: ``archive_ingest`` processes one archive in a worker, ``archive_purge`` removes one and what it stored;
- ``patients``: ``patient_resolve`` (pseudonymous patients, encrypted identifiers);
- ``verification``: ``encounter_verify`` / ``encounter_unverify`` (decisions, masks, grading tasks).
"""
