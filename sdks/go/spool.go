package aforo

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The spool is an append-only file of JSON lines, one per line:
//
//	{"event_id":"…", …}          an event, exactly as it is sent, written when it is recorded
//	{"ack":["<event_id>", …]}     those events were answered (sent or rejected): never resend
//
// Replaying it (New) yields, in order, the events without an ack. The file is then rewritten to
// hold just those, and it is truncated whenever nothing is left to send, or compacted (rewritten
// with just the pending events) once it is past 1 MiB and 4 times their size, so a client that
// is never idle does not grow it for ever. A torn last line (the
// process died mid-write) is skipped. Lines reach the OS at once (a process crash loses nothing);
// they are fsynced at Close, so a machine crash may lose what was recorded since.
type spool struct {
	path         string
	file         *os.File
	size         int64 // bytes in the file
	pendingBytes int64 // of which: event lines not acknowledged
}

const spoolCompactAfter = 1 << 20

type spooledEvent struct {
	id  string
	raw []byte
}

var ackPrefix = []byte(`{"ack":`)

func openSpool(path string) (*spool, []spooledEvent, error) {
	pending, err := replaySpool(path)
	if err != nil {
		return nil, nil, err
	}
	// Rewrite with only what is pending (temporary file + rename: never a half-written spool).
	temporary := path + ".tmp"
	var content bytes.Buffer
	for _, e := range pending {
		content.Write(e.raw)
		content.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("aforo: spool directory: %w", err)
	}
	if err := writeSynced(temporary, content.Bytes()); err != nil {
		return nil, nil, fmt.Errorf("aforo: spool rewrite: %w", err)
	}
	if err := os.Rename(temporary, path); err != nil {
		return nil, nil, fmt.Errorf("aforo: spool rewrite: %w", err)
	}
	sp := &spool{path: path, size: int64(content.Len()), pendingBytes: int64(content.Len())}
	if err := sp.reopen(); err != nil {
		return nil, nil, err
	}
	return sp, pending, nil
}

func (s *spool) reopen() error {
	file, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("aforo: spool open: %w", err)
	}
	s.file = file
	return nil
}

func replaySpool(path string) ([]spooledEvent, error) {
	file, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("aforo: spool open: %w", err)
	}
	defer file.Close()
	var events []spooledEvent
	position := map[string]int{} // event id → index in events, -1 once acknowledged
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for scanner.Scan() {
		line := scanner.Bytes()
		if bytes.HasPrefix(line, ackPrefix) {
			var ack struct {
				Ack []string `json:"ack"`
			}
			if json.Unmarshal(line, &ack) != nil {
				continue
			}
			for _, id := range ack.Ack {
				position[id] = -1
			}
			continue
		}
		var head struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(line, &head) != nil || head.EventID == "" {
			continue // a torn line
		}
		if _, seen := position[head.EventID]; seen {
			continue
		}
		position[head.EventID] = len(events)
		events = append(events, spooledEvent{id: head.EventID, raw: append([]byte(nil), line...)})
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("aforo: spool read: %w", err)
	}
	pending := events[:0]
	for _, e := range events {
		if position[e.id] >= 0 {
			pending = append(pending, e)
		}
	}
	return pending, nil
}

func writeSynced(path string, content []byte) error {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := file.Write(content); err != nil {
		file.Close()
		return err
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return err
	}
	return file.Close()
}

// appendEvent writes one event line (one write call: with O_APPEND, lines never interleave).
func (s *spool) appendEvent(raw []byte) error {
	line := make([]byte, 0, len(raw)+1)
	line = append(append(line, raw...), '\n')
	written, err := s.file.Write(line)
	s.size += int64(written)
	s.pendingBytes += int64(written)
	return err
}

// acknowledge records answered events (ackedBytes: their lines' size); pending are the events
// still unanswered, all of them, in order. Nothing pending: the file is emptied.
func (s *spool) acknowledge(ids []string, ackedBytes int64, pending []pendingEvent) error {
	if len(pending) == 0 {
		s.size, s.pendingBytes = 0, 0
		return s.file.Truncate(0)
	}
	s.pendingBytes -= ackedBytes
	if s.size > spoolCompactAfter && s.size > 4*s.pendingBytes {
		return s.compact(pending)
	}
	line, err := json.Marshal(struct {
		Ack []string `json:"ack"`
	}{ids})
	if err != nil {
		return err
	}
	written, err := s.file.Write(append(line, '\n'))
	s.size += int64(written)
	return err
}

// compact rewrites the file with just the pending events (temporary file + rename).
func (s *spool) compact(pending []pendingEvent) error {
	var content bytes.Buffer
	for _, e := range pending {
		content.Write(e.raw)
		content.WriteByte('\n')
	}
	if err := writeSynced(s.path+".tmp", content.Bytes()); err != nil {
		return err
	}
	if err := os.Rename(s.path+".tmp", s.path); err != nil {
		return err
	}
	_ = s.file.Close()
	s.size, s.pendingBytes = int64(content.Len()), int64(content.Len())
	return s.reopen()
}

func (s *spool) close() error {
	if err := s.file.Sync(); err != nil {
		s.file.Close()
		return err
	}
	return s.file.Close()
}
