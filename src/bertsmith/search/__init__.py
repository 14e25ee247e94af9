"""Architecture search: spaces, budgets, cost models, evaluators, studies and the search strategies."""
