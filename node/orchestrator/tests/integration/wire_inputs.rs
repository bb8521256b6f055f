//! Property tests: arbitrary multipart results and headers through the orchestrator's parsers never panic (the fuzz corpora's inputs run here too).
