"""Infrastructure model: YAML config-as-code loaded into typed, validated objects."""
