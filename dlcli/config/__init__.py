"""Pipeline configuration: schema, loading, overrides. Never imports TensorFlow."""
