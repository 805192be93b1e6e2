package aforo

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// NewEventID returns a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits
// from crypto/rand. Ids sort by creation time, which keeps the server's unique index on
// (tenant, event_id) append-friendly, and are made once per event at record time so that every
// retry of that event carries the same id (the API answers a resend "duplicate").
func NewEventID() string {
	return uuidV7(time.Now())
}

func uuidV7(now time.Time) string {
	var id [16]byte
	if _, err := rand.Read(id[6:]); err != nil {
		// crypto/rand on Linux (getrandom) does not fail once the kernel is seeded; an id
		// without randomness could collide and be deduplicated away, so refuse to make one.
		panic("aforo: crypto/rand failed: " + err.Error())
	}
	var millis [8]byte
	binary.BigEndian.PutUint64(millis[:], uint64(now.UnixMilli()))
	copy(id[0:6], millis[2:8])
	id[6] = (id[6] & 0x0f) | 0x70 // version 7
	id[8] = (id[8] & 0x3f) | 0x80 // variant 10
	var text [36]byte
	hex.Encode(text[0:8], id[0:4])
	text[8] = '-'
	hex.Encode(text[9:13], id[4:6])
	text[13] = '-'
	hex.Encode(text[14:18], id[6:8])
	text[18] = '-'
	hex.Encode(text[19:23], id[8:10])
	text[23] = '-'
	hex.Encode(text[24:36], id[10:16])
	return string(text[:])
}
