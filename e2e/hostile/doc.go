// Package hostile attacks the real polysocket binary, in its own
// process, with clients that try to make it hold memory for them: ones
// that hold no session (slow bodies, parameter bombs, forged hosts) and
// ones whose sessions send ahead of their turn and leave fragments
// unfinished (issue 10), reading the process's memory from /proc. It has
// tests only.
package hostile
