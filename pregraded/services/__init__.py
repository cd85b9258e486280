"""Writes of the pre-graded app, by sub-domain (import the submodule you need):

- ``pregraded.services.imports``: ``grade_import_create``, ``grade_import_map``, ``grade_import_cancel`` (the request
  side of a grade import: read and check the spreadsheet, the mapping step, queueing the job).
- ``pregraded.services.runner``: ``grade_import_run`` (the job item that writes the grades).
- ``pregraded.services.registry``: ``ai_model_create``, ``ai_model_resolve``, ``grader_resolve``.
- ``pregraded.services.verification``: ``verification_ensure``, ``verifications_mark_imported``, ``verification_confirm``.
"""
