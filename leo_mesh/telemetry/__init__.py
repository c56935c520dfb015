"""What the services tell about themselves beyond their logs: Prometheus
metrics (the catalog is leo_mesh.metrics; `exposition` serves them, also
summed over worker processes) and OpenTelemetry traces (`tracing`)."""
