"""The embedded software catalog: entities, validation, locations and ingestion."""
