// The on-disk spool: an append-only file of JSON lines holding every event not yet settled
// (acknowledged or finally rejected) by Aforo, replayed when a client opens it again.
//
//   {"e": <event>}              an event was recorded (written synchronously in record())
//   {"ack": ["<event_id>", …]}  these events are settled: never to be sent again
//
// Replay = every "e" line whose event_id no "ack" line names, in file order. A torn last line
// (a crash mid-write) is skipped. The file is compacted (rewritten from the pending events
// through a temporary file and a rename) when it is opened, on close, and when it grows past
// `compactBytes`. Writes are not fsync'ed: the spool survives a process crash or restart, not a
// machine crash. One client per spool file at a time (a lock file next to it enforces it).
import fs from 'node:fs';
import path from 'node:path';

export class Spool {
  /** @param {string} file @param {{compactBytes?: number}} options */
  constructor(file, { compactBytes = 16 * 1024 * 1024 } = {}) {
    this.file = path.resolve(file);
    this.compactBytes = compactBytes;
    this.lockFile = `${this.file}.lock`;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    this.#lock();
    this.fd = null;
    this.bytes = 0;
  }

  #lock() {
    try {
      fs.writeFileSync(this.lockFile, String(process.pid), { flag: 'wx' });
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(this.lockFile, 'utf8'));
      if (holder && holder !== process.pid && isAlive(holder)) {
        throw new Error(`spool ${this.file} is in use by process ${holder}`);
      }
      if (holder === process.pid) throw new Error(`spool ${this.file} is already open in this process`);
      fs.writeFileSync(this.lockFile, String(process.pid)); // a stale lock from a dead process
    }
  }

  /** The pending events of the file, in the order they were recorded. */
  replay() {
    let text = '';
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    const pending = new Map();
    for (const line of text.split('\n')) {
      if (!line) continue;
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        continue; // a torn write: the event it held was never acknowledged to the caller's crash-free path
      }
      if (entry.e?.event_id) pending.set(entry.e.event_id, entry.e);
      else if (Array.isArray(entry.ack)) for (const id of entry.ack) pending.delete(id);
    }
    return [...pending.values()];
  }

  /** Rewrite the file to hold exactly `events` (the pending ones) and open it for appending. */
  compact(events) {
    const temporary = `${this.file}.tmp`;
    const body = events.map((event) => `{"e":${JSON.stringify(event)}}\n`).join('');
    fs.writeFileSync(temporary, body);
    fs.renameSync(temporary, this.file);
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = fs.openSync(this.file, 'a');
    this.bytes = Buffer.byteLength(body);
  }

  /** @param {string} eventJson an event already serialised */
  append(eventJson) {
    const line = `{"e":${eventJson}}\n`;
    fs.writeSync(this.fd, line);
    this.bytes += line.length;
  }

  /** @param {string[]} eventIds */
  ack(eventIds) {
    if (!eventIds.length || this.fd === null) return;
    const line = `${JSON.stringify({ ack: eventIds })}\n`;
    fs.writeSync(this.fd, line);
    this.bytes += line.length;
  }

  get wantsCompaction() {
    return this.bytes > this.compactBytes;
  }

  close(pendingEvents) {
    if (this.fd === null) return;
    this.compact(pendingEvents);
    fs.closeSync(this.fd);
    this.fd = null;
    fs.rmSync(this.lockFile, { force: true });
  }
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}
