package session

import "encoding/base64"

// Kind is the type of a message to the client.
type Kind uint8

// The kinds of messages a client receives.
const (
	Text Kind = iota + 1
	Binary
	Close
)

// msgOverhead is what a queued message costs beside its payload: the
// Message (64 bytes on 64-bit) and its slot in the queue.
const msgOverhead = 72

// Message is one message queued for the client. Its fields are never
// changed once queued, so a poll may hand it out without copying.
type Message struct {
	Seq  int64
	Kind Kind
	// Data is the payload of Text and Binary messages.
	Data []byte
	// Code and Reason are set on the Close message.
	Code   int
	Reason string
}

// wireSize is the message's share of a poll response's byte cap: the
// data string as sent (base64 for binary).
func (m *Message) wireSize() int64 {
	switch m.Kind {
	case Binary:
		return int64(base64.StdEncoding.EncodedLen(len(m.Data)))
	case Close:
		return int64(len(m.Reason))
	}
	return int64(len(m.Data))
}
