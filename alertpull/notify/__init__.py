"""Notifications: after a run publishes its parts, tell the configured targets (webhook,
Slack) about the alerts that matter, from what was published, each target at its own
position in state. config: the `notify:` section; ledger: the per-target positions;
targets: the HTTP calls; deliver: the loop the runner calls after its commit."""
