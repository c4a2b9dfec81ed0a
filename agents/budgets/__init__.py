"""The tenants' day and month budgets: the pipeline that runs the budget ledger's owner."""
