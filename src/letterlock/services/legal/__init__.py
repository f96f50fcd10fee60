"""Legal matters: intake, recommendation, decision, execution (holds, production),
notices."""
