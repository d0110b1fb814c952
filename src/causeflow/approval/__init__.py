"""The approvers' side of remediation approvals: the `/v1/notifications/approvals` routes,
answering one, and the job that expires overdue ones. The approval records themselves belong
to the remediation they gate (`remediation/approvals.py`, `remediation/tables.py`)."""
