"""Part of the archiver package (installed as archiver.templates)."""
