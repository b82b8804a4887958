"""Part of the archiver package (installed as archiver.retention_schedules)."""
