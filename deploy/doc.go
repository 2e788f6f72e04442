// Package deploy holds no code: its tests check the deployment files beside
// it against the worker. grafana/dyplsq.json (the dashboard) and
// prometheus/alerts.yml (the alert rules) may name only series the worker
// exports; kubernetes/ must decode strictly into the Kubernetes API types
// and keep the worker's probes, resources, Secret, PodDisruptionBudget and
// grace period. The tests link Prometheus and the Kubernetes API; the
// commands do not.
package deploy
