"""Services write: plain functions with keyword-only arguments, each inside one transaction.

Views, forms, API endpoints, tasks and management commands all call these, so behaviour is the same whichever
door the user came in by."""
