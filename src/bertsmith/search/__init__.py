"""Architecture search: spaces, budgets (strategies, evaluators and studies come with issue 4)."""
