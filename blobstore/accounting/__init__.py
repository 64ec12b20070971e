"""What tenants hold, use and cost: quotas, usage, prices and cost reports."""
