// Package ops tests the operational behaviour of the polysocket
// binary with real processes: metrics after real traffic, health and
// readiness, graceful drain on SIGTERM, TLS, the SSRF guard through
// /create, and the limits against abusive clients (slowloris, oversize
// headers, the per-address create rate). It has tests only.
package ops
