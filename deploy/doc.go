// Package deploy holds no code. It is the home of the deployment files
// (compose.yaml, kubernetes/, grafana/, prometheus/) and of the tests
// that check them against the real things: each Kubernetes object
// decoded strictly into its k8s.io/api type, every polysocket argument
// against the built binary's flags, and the dashboard's queries and the
// alert rules evaluated by a real Prometheus scraping a real polysocket.
package deploy
