// Package cluster runs polysocket as a cluster of real processes: it
// builds the binary once, starts redis-server (single or a three-master
// Cluster), several routers and relays on loopback, and checks what
// issue 3 asks of a cluster: even spread, exact token limits under
// concurrent creates, relays and routers dying, and Redis outages. It has
// tests only.
package cluster
